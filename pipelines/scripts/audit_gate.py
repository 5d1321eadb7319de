from annotate.audit.checks import check_gate
from annotate.core.logs import logged

with logged(snakemake.log[0]):
    print(check_gate(snakemake.input[0]))
