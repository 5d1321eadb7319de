from annotate.config import resolve_config, sequence_root
from annotate.stages.dataset import run_plan
from annotate.core.logs import logged

with logged(snakemake.log[0]):
    config = resolve_config(snakemake.config)
    print(run_plan(config, list(snakemake.input.labels), snakemake.output.plan, snakemake.output.summary,
                   sequence_root(config), list(snakemake.input.cameras)))
