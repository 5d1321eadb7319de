from pathlib import Path

from annotate.config import resolve_config
from annotate.core.logs import logged
from annotate.stages import synth

with logged(snakemake.log[0]):
    out = Path(snakemake.output[0])
    synth.run(resolve_config(snakemake.config), out.parent, out.name, n_jobs=snakemake.threads)
