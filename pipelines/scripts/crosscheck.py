from pathlib import Path

from annotate.core.logs import logged
from annotate.stages import triangulate

with logged(snakemake.log[0]):
    print(triangulate.crosscheck(snakemake.input.published, snakemake.input.triangulated,
                                 Path(snakemake.output.crosscheck).parent))
