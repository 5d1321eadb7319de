# The bundled trainer on the dataset's shards, then its evaluation beside the constant baseline.
#   snakemake train          train + evaluate only (also part of rule all unless train.in_default_run is false)
TRAIN_RUN = f"{RESULTS}/train/{CFG['train']['name']}"


def train_outputs():
    """What rule all asks of the trainer (nothing unless train.in_default_run)."""
    if not CFG["train"]["in_default_run"]:
        return []
    return [f"{TRAIN_RUN}/evaluation/report.txt"]


rule train_model:
    input:
        index=f"{DATASET}/index.json",
        config=CFG["train"]["config"],
    output:
        summary=f"{TRAIN_RUN}/summary.json",
    params:
        run_dir=TRAIN_RUN,
        dataset=DATASET,
    log:
        f"{RESULTS}/logs/train/{CFG['train']['name']}.log",
    threads: 2
    conda:
        "envs/annotate.yaml"
    script:
        "scripts/train.py"


rule evaluate_model:
    input:
        summary=f"{TRAIN_RUN}/summary.json",
        index=f"{DATASET}/index.json",
    output:
        report=f"{TRAIN_RUN}/evaluation/report.txt",
        metrics=f"{TRAIN_RUN}/evaluation/metrics.json",
    params:
        checkpoint=f"{TRAIN_RUN}/checkpoints/last.pt",
        dataset=DATASET,
        split=CFG["train"]["eval_split"],
        out=f"{TRAIN_RUN}/evaluation",
    log:
        f"{RESULTS}/logs/train/{CFG['train']['name']}_evaluate.log",
    threads: 2
    conda:
        "envs/annotate.yaml"
    script:
        "scripts/evaluate.py"


rule train:
    input:
        f"{TRAIN_RUN}/evaluation/report.txt",
