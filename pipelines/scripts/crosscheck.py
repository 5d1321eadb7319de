from pathlib import Path

from annotate.pipeline import logged, run_crosscheck

with logged(snakemake.log[0]):
    print(run_crosscheck(snakemake.input.published, snakemake.input.triangulated,
                         Path(snakemake.output.crosscheck).parent))
