# Calibration, hdFace3d and hdPose3d -> Parquet tables (+ recorded rejections).


rule ingest:
    input:
        unpack(sequence_inputs),
    output:
        cameras=f"{RESULTS}/{{sequence}}/ingest/cameras.parquet",
        faces3d=f"{RESULTS}/{{sequence}}/ingest/faces3d.parquet",
        bodies=f"{RESULTS}/{{sequence}}/ingest/bodies.parquet",
        rejections=f"{RESULTS}/{{sequence}}/ingest/rejections.parquet",
    params:
        root=SEQUENCE_ROOT,
        config=stage_config(CFG, "ingest"),
    log:
        f"{RESULTS}/logs/ingest/{{sequence}}.log",
    conda:
        "envs/annotate.yaml"
    script:
        "scripts/ingest.py"
