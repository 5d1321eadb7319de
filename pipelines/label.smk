# Mean head model over all sequences, then per-face fits and per-camera labels.


rule head_model:
    input:
        faces3d=[label_faces3d(s) for s in SEQUENCES],
    output:
        f"{RESULTS}/head_model.json",
    params:
        config=stage_config(CFG, "head_model"),
    log:
        f"{RESULTS}/logs/head_model.log",
    conda:
        "envs/annotate.yaml"
    script:
        "scripts/head_model.py"


rule label:
    input:
        faces3d=lambda w: label_faces3d(w.sequence),
        cameras=f"{RESULTS}/{{sequence}}/ingest/cameras.parquet",
        model=f"{RESULTS}/head_model.json",
    output:
        fits=f"{RESULTS}/{{sequence}}/labels/head_fits.parquet",
        labels=f"{RESULTS}/{{sequence}}/labels/labels.parquet",
        summary=f"{RESULTS}/{{sequence}}/labels/summary.json",
        subjects=f"{RESULTS}/{{sequence}}/labels/subjects.json",
    params:
        config=stage_config(CFG, "label"),
    log:
        f"{RESULTS}/logs/label/{{sequence}}.log",
    conda:
        "envs/annotate.yaml"
    script:
        "scripts/label.py"
