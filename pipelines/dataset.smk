# Training dataset: plan (which views), per-sequence crops into shards, card, exports.
# Layout of results/dataset/: annotate/stages/dataset.py (and docs/dataset.md).
# DATASET and dataset_outputs() are in common.smk. The dataset config is a param of every
# rule (stage_config), so changing it reruns them (the per-camera fingerprints then decide
# what to redo).


rule dataset_plan:
    input:
        labels=label_outputs(),
        # frame_choice cheapest_to_decode reads every camera video's packets.
        videos=all_sequence_inputs() if CFG["dataset"]["frame_choice"] == "cheapest_to_decode" else [],
        # ... and which picture shows which frame (ingest.frame_offsets).
        cameras=each_sequence(SEQ.ingest("cameras")) if CFG["dataset"]["frame_choice"] == "cheapest_to_decode" else [],
    output:
        plan=f"{DATASET}/plan.parquet",
        summary=f"{DATASET}/plan_summary.json",
    params:
        config=stage_config(CFG, "dataset"),
    log:
        log("dataset_plan", per_sequence=False),
    conda:
        "envs/annotate.yaml"
    script:
        "scripts/dataset_plan.py"


rule dataset_shards:
    input:
        unpack(sequence_inputs),
        plan=f"{DATASET}/plan.parquet",
        labels=str(SEQ.labels("labels")),
        cameras=str(SEQ.ingest("cameras")),
    output:
        summary=f"{DATASET}/parts/{{sequence}}.json",
        rejections=f"{DATASET}/parts/{{sequence}}-rejections.parquet",
    params:
        config=stage_config(CFG, "dataset"),
    log:
        log("dataset_shards"),
    # Cameras are cropped in parallel: Snakemake grants at most --cores of these.
    threads: CFG["dataset"]["threads"]
    conda:
        "envs/annotate.yaml"
    script:
        "scripts/dataset_shards.py"


rule dataset_card:
    input:
        summary=f"{DATASET}/plan_summary.json",
        parts=expand(f"{DATASET}/parts/{{sequence}}.json", sequence=SEQUENCES),
        rejections=expand(f"{DATASET}/parts/{{sequence}}-rejections.parquet", sequence=SEQUENCES),
    output:
        card=f"{DATASET}/card.json",
        markdown=f"{DATASET}/card.md",
        index=f"{DATASET}/index.json",
        rejections=f"{DATASET}/rejections.parquet",
    params:
        config=stage_config(CFG, "dataset"),
    log:
        log("dataset_card", per_sequence=False),
    conda:
        "envs/annotate.yaml"
    script:
        "scripts/dataset_card.py"


rule dataset_export:
    input:
        index=f"{DATASET}/index.json",
    output:
        directory(f"{DATASET}/exports/{{export}}"),
    wildcard_constraints:
        export="whenet|300wlp|coco",
    params:
        config=stage_config(CFG, "dataset"),
    log:
        str(LAYOUT.log("dataset_export", "{export}")),
    conda:
        "envs/annotate.yaml"
    script:
        "scripts/dataset_export.py"
