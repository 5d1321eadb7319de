# Rule triangulate (annotate.stages.triangulate.run). The __main__ guard matters: the view
# workers start by spawning, which imports the parent's main module, and must not run the
# stage again.
from pathlib import Path

from annotate.config import resolve_config
from annotate.core.logs import logged
from annotate.stages import triangulate

if __name__ == "__main__":
    with logged(snakemake.log[0]):
        print(triangulate.run(resolve_config(snakemake.config), snakemake.params.root, snakemake.wildcards.sequence,
                              Path(snakemake.input.cameras).parent, Path(snakemake.output.faces3d).parent,
                              workers=snakemake.threads))
