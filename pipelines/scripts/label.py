from pathlib import Path

from annotate.config import resolve_config
from annotate.core.logs import logged
from annotate.stages import label

with logged(snakemake.log[0]):
    print(label.run(resolve_config(snakemake.config), snakemake.input.faces3d, snakemake.input.cameras,
                    snakemake.input.model, Path(snakemake.output.labels).parent))
