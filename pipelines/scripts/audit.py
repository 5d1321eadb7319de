from pathlib import Path

from annotate.audit.checks import audit_summary
from annotate.config import resolve_config
from annotate.core.logs import logged
from annotate.stages import audit

with logged(snakemake.log[0]):
    result = audit.run(resolve_config(snakemake.config), Path(snakemake.input.model).parent,
                       snakemake.params.sequences, Path(snakemake.output[0]).parent,
                       model_path=snakemake.input.model, shards_dir=Path(snakemake.input.dataset).parent)
    print(audit_summary(result.metrics))
