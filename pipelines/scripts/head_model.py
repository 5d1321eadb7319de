from annotate.config import resolve_config
from annotate.core.logs import logged
from annotate.stages import head_model

with logged(snakemake.log[0]):
    model = head_model.run(resolve_config(snakemake.config), list(snakemake.input.faces3d), snakemake.output[0])
    print(f"head model from {model.faces_used} faces")
