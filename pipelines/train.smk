# The bundled trainer on the dataset's shards, then its evaluation beside the constant baseline.
#   snakemake train    train on the train split (validating on val), evaluate on train.eval_split;
#                      rule all includes it only with train.in_default_run: true
import os

TRAIN_RUN = f"{RESULTS}/train/{CFG['train']['name']}"
# A relative train config is looked up in the working directory, then beside the Snakefile.
TRAIN_CONFIG = CFG["train"]["config"]
if not os.path.isabs(TRAIN_CONFIG) and not os.path.exists(TRAIN_CONFIG):
    TRAIN_CONFIG = os.path.join(workflow.basedir, TRAIN_CONFIG)
# What rule all asks of the trainer: nothing unless train.in_default_run.
TRAIN_OUTPUTS = [f"{TRAIN_RUN}/evaluation/report.txt"] if CFG["train"]["in_default_run"] else []


rule train_model:
    input:
        index=f"{DATASET}/index.json",
        config=TRAIN_CONFIG,
    output:
        summary=f"{TRAIN_RUN}/summary.json",
    params:
        config=stage_config(CFG, "train"),
        run_dir=lambda w, output: os.path.dirname(output.summary),
        dataset=lambda w, input: os.path.dirname(input.index),
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
        config=stage_config(CFG, "train"),
        checkpoint=lambda w, input: os.path.join(os.path.dirname(input.summary), "checkpoints", "last.pt"),
        dataset=lambda w, input: os.path.dirname(input.index),
        split=CFG["train"]["eval_split"],
        out=lambda w, output: os.path.dirname(output.report),
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
