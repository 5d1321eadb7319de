from pathlib import Path

from annotate.config import resolve_config
from annotate.pipeline import logged, run_label

with logged(snakemake.log[0]):
    print(run_label(resolve_config(snakemake.config), snakemake.input.faces3d, snakemake.input.cameras,
                    snakemake.input.model, Path(snakemake.output.labels).parent))
