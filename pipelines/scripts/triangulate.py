from pathlib import Path

from annotate.config import resolve_config
from annotate.core.logs import logged
from annotate.stages import triangulate

with logged(snakemake.log[0]):
    print(triangulate.run(resolve_config(snakemake.config), snakemake.params.root, snakemake.wildcards.sequence,
                          Path(snakemake.input.cameras).parent, Path(snakemake.output.faces3d).parent))
