# The triangulation path (landmarks3d: triangulated | both): 2D landmarks detected in every
# view, robust multi-view triangulation -> faces3d (source=triangulated); with both, the
# cross-check against the published faces and the combined table the labels use.


rule triangulate:
    input:
        unpack(sequence_inputs),
        cameras=f"{RESULTS}/{{sequence}}/ingest/cameras.parquet",
        bodies=f"{RESULTS}/{{sequence}}/ingest/bodies.parquet",
        faces3d=f"{RESULTS}/{{sequence}}/ingest/faces3d.parquet",
    output:
        faces3d=f"{RESULTS}/{{sequence}}/triangulate/faces3d.parquet",
        rejections=f"{RESULTS}/{{sequence}}/triangulate/rejections.parquet",
        detections=f"{RESULTS}/{{sequence}}/triangulate/detections2d.parquet",
        summary=f"{RESULTS}/{{sequence}}/triangulate/summary.json",
    params:
        root=SEQUENCE_ROOT,
        config=stage_config(CFG, "triangulate"),
    log:
        f"{RESULTS}/logs/triangulate/{{sequence}}.log",
    conda:
        "envs/annotate.yaml"
    script:
        "scripts/triangulate.py"


rule crosscheck:
    input:
        published=f"{RESULTS}/{{sequence}}/ingest/faces3d.parquet",
        triangulated=f"{RESULTS}/{{sequence}}/triangulate/faces3d.parquet",
    output:
        crosscheck=f"{RESULTS}/{{sequence}}/triangulate/crosscheck.parquet",
        combined=f"{RESULTS}/{{sequence}}/triangulate/faces3d_combined.parquet",
        summary=f"{RESULTS}/{{sequence}}/triangulate/crosscheck.json",
    log:
        f"{RESULTS}/logs/crosscheck/{{sequence}}.log",
    conda:
        "envs/annotate.yaml"
    script:
        "scripts/crosscheck.py"
