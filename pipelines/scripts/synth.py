from pathlib import Path

from annotate.config import resolve_config
from annotate.pipeline import logged, run_synth

with logged(snakemake.log[0]):
    out = Path(snakemake.output[0])
    run_synth(resolve_config(snakemake.config), out.parent, out.name, n_jobs=snakemake.threads)
