import json
from pathlib import Path

from annotate.config import resolve_config
from annotate.stages.dataset import export_of_folder, run_export
from annotate.core.logs import logged

with logged(snakemake.log[0]):
    out = Path(snakemake.output[0])
    print(json.dumps(run_export(resolve_config(snakemake.config), export_of_folder(snakemake.wildcards.export),
                                Path(snakemake.input.index).parent, out)))
