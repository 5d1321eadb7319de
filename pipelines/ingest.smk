# Calibration, hdFace3d and hdPose3d -> Parquet tables (+ recorded rejections).


rule ingest:
    input:
        unpack(sequence_inputs),
    output:
        cameras=str(SEQ.ingest("cameras")),
        frames=str(SEQ.ingest("frames")),
        faces3d=str(SEQ.ingest("faces3d")),
        bodies=str(SEQ.ingest("bodies")),
        rejections=str(SEQ.ingest("rejections")),
    params:
        root=SEQUENCE_ROOT,
        config=lambda wildcards: stage_config(CFG, "ingest", wildcards.sequence),
    log:
        log("ingest"),
    conda:
        "envs/annotate.yaml"
    script:
        "scripts/ingest.py"
