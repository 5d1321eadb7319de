# Label audit over every sequence: report.html, metrics.json, flags/samples/cameras tables.
#   snakemake audit          (rule all includes it with audit.enabled, the default)
# With audit.strict the audit_gate rule fails when a check fails; the report stays.
AUDIT = f"{RESULTS}/audit"
AUDIT_OUTPUTS = ["report.html", "metrics.json", "flags.parquet", "samples.parquet", "cameras.parquet"]


def audit_inputs(wildcards):
    """Labels, fits and the optional tables the audit reads (see annotate.pipeline.audit_inputs)."""
    inputs = {
        "labels": label_outputs(),
        "fits": expand(f"{RESULTS}/{{sequence}}/labels/head_fits.parquet", sequence=SEQUENCES),
        "model": f"{RESULTS}/head_model.json",
        "bodies": expand(f"{RESULTS}/{{sequence}}/ingest/bodies.parquet", sequence=SEQUENCES),
        "dataset": f"{DATASET}/index.json",
    }
    if audit_detections_wanted():
        inputs["detections"] = expand(f"{RESULTS}/{{sequence}}/triangulate/detections2d.parquet", sequence=SEQUENCES)
    return inputs


rule audit_report:
    input:
        unpack(audit_inputs),
    output:
        [f"{AUDIT}/{name}" for name in AUDIT_OUTPUTS],
    params:
        sequences=SEQUENCES,
    log:
        f"{RESULTS}/logs/audit.log",
    threads: 2
    conda:
        "envs/annotate.yaml"
    script:
        "scripts/audit.py"


rule audit_gate:
    input:
        f"{AUDIT}/metrics.json",
    output:
        touch(f"{AUDIT}/passed"),
    log:
        f"{RESULTS}/logs/audit_gate.log",
    conda:
        "envs/annotate.yaml"
    script:
        "scripts/audit_gate.py"


rule audit:
    input:
        audit_outputs(),
