# Label audit over every sequence: report.html, metrics.json, flags/samples/cameras tables.
#   snakemake audit          (rule all includes it with audit.enabled, the default)
# With audit.strict the audit_gate rule fails when a check fails; the report stays.
# AUDIT, audit_inputs() and audit_outputs() are in common.smk.
AUDIT_OUTPUTS = ["report.html", "metrics.json", "flags.parquet", "samples.parquet", "cameras.parquet"]


rule audit_report:
    input:
        unpack(audit_inputs),
    output:
        [f"{AUDIT}/{name}" for name in AUDIT_OUTPUTS],
    params:
        sequences=SEQUENCES,
        config=stage_config(CFG, "audit"),
    log:
        log("audit", per_sequence=False),
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
    params:
        config=stage_config(CFG, "audit"),
    log:
        log("audit_gate", per_sequence=False),
    conda:
        "envs/annotate.yaml"
    script:
        "scripts/audit_gate.py"


rule audit:
    input:
        audit_outputs(),
