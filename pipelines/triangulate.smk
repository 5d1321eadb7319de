# The triangulation path (landmarks3d: triangulated | both): 2D landmarks detected in every
# view, robust multi-view triangulation -> faces3d (source=triangulated); with both, the
# cross-check against the published faces and the combined table the labels use.


rule triangulate:
    input:
        unpack(sequence_inputs),
        cameras=str(SEQ.ingest("cameras")),
        frames=str(SEQ.ingest("frames")),
        bodies=str(SEQ.ingest("bodies")),
        faces3d=str(SEQ.ingest("faces3d")),
    output:
        faces3d=str(SEQ.triangulate("faces3d")),
        rejections=str(SEQ.triangulate("rejections")),
        detections=str(SEQ.triangulate("detections2d")),
        summary=str(SEQ.triangulate("summary")),
    # Image backends detect the cameras' views in parallel processes (the results do not
    # depend on how many), each holding its own models: about 0.6 GB of private memory
    # (docs/triangulation.md); the synthetic stand-in reads no image and runs in one.
    threads: 1 if SYNTHETIC else workflow.cores
    resources:
        mem_mb=lambda wildcards, threads: max(4000, 1000 + 700 * threads),
    params:
        root=SEQUENCE_ROOT,
        config=stage_config(CFG, "triangulate"),
    log:
        log("triangulate"),
    conda:
        "envs/annotate.yaml"
    script:
        "scripts/triangulate.py"


rule crosscheck:
    input:
        published=str(SEQ.ingest("faces3d")),
        triangulated=str(SEQ.triangulate("faces3d")),
    output:
        crosscheck=str(SEQ.triangulate("crosscheck")),
        combined=str(SEQ.triangulate("combined")),
        summary=str(SEQ.triangulate("crosscheck_summary")),
    log:
        log("crosscheck"),
    conda:
        "envs/annotate.yaml"
    script:
        "scripts/crosscheck.py"
