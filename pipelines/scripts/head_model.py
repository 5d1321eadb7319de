from annotate.config import resolve_config
from annotate.pipeline import logged, run_head_model

with logged(snakemake.log[0]):
    model = run_head_model(resolve_config(snakemake.config), list(snakemake.input.faces3d), snakemake.output[0])
    print(f"head model from {model.faces_used} faces")
