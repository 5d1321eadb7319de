from annotate.config import resolve_config
from annotate.stages.dataset import run_plan
from annotate.core.logs import logged

with logged(snakemake.log[0]):
    print(run_plan(resolve_config(snakemake.config), list(snakemake.input.labels), snakemake.output.plan,
                   snakemake.output.summary))
