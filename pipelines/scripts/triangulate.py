from pathlib import Path

from annotate.config import resolve_config
from annotate.pipeline import logged, run_triangulate

with logged(snakemake.log[0]):
    print(run_triangulate(resolve_config(snakemake.config), snakemake.params.root, snakemake.wildcards.sequence,
                          Path(snakemake.input.cameras).parent, Path(snakemake.output.faces3d).parent))
