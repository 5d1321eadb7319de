# Mean head model over all sequences, then per-face fits and per-camera labels.


rule head_model:
    input:
        faces3d=[label_faces3d(s) for s in SEQUENCES],
    output:
        str(LAYOUT.head_model),
    params:
        config=stage_config(CFG, "head_model"),
    log:
        log("head_model", per_sequence=False),
    conda:
        "envs/annotate.yaml"
    script:
        "scripts/head_model.py"


rule label:
    input:
        faces3d=lambda w: label_faces3d(w.sequence),
        cameras=str(SEQ.ingest("cameras")),
        model=str(LAYOUT.head_model),
    output:
        fits=str(SEQ.labels("head_fits")),
        labels=str(SEQ.labels("labels")),
        summary=str(SEQ.labels("summary")),
        subjects=str(SEQ.labels("subjects")),
    params:
        config=stage_config(CFG, "label"),
    log:
        log("label"),
    conda:
        "envs/annotate.yaml"
    script:
        "scripts/label.py"
