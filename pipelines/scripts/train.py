# Rule train_model: the bundled trainer on the dataset folder (annotate.train.engine.train).
# checkpoints/last.pt is deliberately not a rule output: Snakemake keeps it when the job
# fails or is killed, and the rerun resumes from it (engine.resume: auto).
# The __main__ guard matters: loader workers start from a fork server, which imports the
# parent's main module, and must not run the training again.
from annotate.core.atomic import write_json_atomic
from annotate.core.logs import logged
from annotate.train.config import resolve_train_config
from annotate.train.engine import train

if __name__ == "__main__":
    with logged(snakemake.log[0]):
        cfg = resolve_train_config(snakemake.input.config)
        cfg["run_dir"] = snakemake.params.run_dir
        cfg["data"]["dataset"] = snakemake.params.dataset
        cfg["engine"]["threads"] = cfg["engine"]["threads"] or snakemake.threads
        summary = train(cfg)
        write_json_atomic(snakemake.output.summary, summary)
