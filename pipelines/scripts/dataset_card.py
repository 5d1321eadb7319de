import json
from pathlib import Path

from annotate.config import resolve_config
from annotate.stages.dataset import run_card
from annotate.core.logs import logged

with logged(snakemake.log[0]):
    card = run_card(resolve_config(snakemake.config), Path(snakemake.output.card).parent, snakemake.input.summary,
                    list(snakemake.input.parts), list(snakemake.input.rejections))
    print(json.dumps({k: card[k] for k in ("samples", "sequences", "shards", "media_rejections_by_reason")}))
