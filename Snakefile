# Full-range head-pose labels from Panoptic-format captures.
# All logic lives in the `annotate` package; the rules only wire files together.
#   snakemake --cores 16                                         # embedded synthetic sequence
#   snakemake --cores 16 --configfile pipelines/config/panoptic.yaml   # real Panoptic data
#   snakemake --workflow-profile pipelines/profiles/slurm        # on a SLURM cluster
from snakemake.utils import min_version, validate

min_version("8.0")


configfile: f"{workflow.basedir}/pipelines/config/default.yaml"


# No defaults filled here: annotate.config.resolve_config (common.smk) applies when_synthetic
# first, then the schema's defaults.
validate(config, "schemas/config.schema.yaml", set_default=False)


include: "pipelines/common.smk"
include: "pipelines/synth.smk"
include: "pipelines/download.smk"
include: "pipelines/ingest.smk"
include: "pipelines/triangulate.smk"
include: "pipelines/label.smk"
include: "pipelines/dataset.smk"
include: "pipelines/train.smk"
include: "pipelines/audit.smk"


rule all:
    input:
        label_outputs(),
        triangulate_outputs(),
        dataset_outputs(),
        TRAIN_OUTPUTS,
        audit_outputs(),
    default_target: True
