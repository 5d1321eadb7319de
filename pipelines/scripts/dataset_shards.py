from pathlib import Path

from annotate.config import resolve_config, sequence_root
from annotate.stages.dataset import run_build
from annotate.core.logs import logged

with logged(snakemake.log[0]):
    config = resolve_config(snakemake.config)
    config["dataset"]["threads"] = snakemake.threads
    sequence = snakemake.wildcards.sequence
    print(run_build(config, sequence, snakemake.input.plan, snakemake.input.labels, snakemake.input.cameras,
                    sequence_root(config) / sequence, Path(snakemake.output.summary).parent.parent))
