# Fetch a Panoptic sequence from the server into panoptic.root (annotate.panoptic.download;
# docs/download.md). Asked for by ingest only with source: panoptic and download.enabled.
# The fetched files are tracked by the sequence's download_manifest.json, not by Snakemake:
# the rule's output is the run's summary, so a rerun verifies and never deletes the data.


rule download:
    output:
        summary=str(SEQ.download_summary),
    params:
        root=SEQUENCE_ROOT,
        config=stage_config(CFG, "download"),
    log:
        log("download"),
    conda:
        "envs/annotate.yaml"
    script:
        "scripts/download.py"
