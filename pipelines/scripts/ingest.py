from pathlib import Path

from annotate.config import resolve_config
from annotate.core.logs import logged
from annotate.stages import ingest

with logged(snakemake.log[0]):
    print(ingest.run(resolve_config(snakemake.config), snakemake.params.root, snakemake.wildcards.sequence,
                     Path(snakemake.output.faces3d).parent))
