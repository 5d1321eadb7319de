from pathlib import Path

from annotate.config import resolve_config
from annotate.pipeline import logged, run_ingest

with logged(snakemake.log[0]):
    print(run_ingest(resolve_config(snakemake.config), snakemake.params.root, snakemake.wildcards.sequence,
                     Path(snakemake.output.faces3d).parent))
