# Rule evaluate_model: score the trained checkpoint on a dataset split beside the constant
# baseline; the table also goes to the terminal (stdout), the rest to the log.
# (__main__ guard: loader workers start from a fork server, which imports this module.)
import sys

from annotate.datasets.readers import ShardRecords, shard_paths
from annotate.core.logs import logged
from annotate.train.evaluate import evaluate_checkpoint, format_report

if __name__ == "__main__":
    with logged(snakemake.log[0]):
        paths = shard_paths(snakemake.params.dataset, snakemake.params.split)
        if not paths:
            raise ValueError(f"{snakemake.params.dataset}: split {snakemake.params.split!r} has no shards; "
                             "set dataset.split (assign or fractions) so it gets samples")
        title = f"{snakemake.params.dataset} split {snakemake.params.split}"
        report = evaluate_checkpoint(snakemake.params.checkpoint, ShardRecords(paths), snakemake.params.out,
                                     batch_size=64, num_workers=1, device="auto", title=title)
        table = format_report(report, f"{title}, checkpoint step {report['step']}")
        print(table)
    print(table, file=sys.__stdout__)
