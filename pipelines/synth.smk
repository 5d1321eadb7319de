# The embedded synthetic sequence, in the real Panoptic layout (only with source: synthetic).


rule synth:
    output:
        directory(f"{SEQUENCE_ROOT}/{{sequence}}"),
    params:
        config=stage_config(CFG, "synth"),
    log:
        log("synth"),
    # Rendering is parallel over camera groups: every core --cores grants.
    threads: workflow.cores
    conda:
        "envs/annotate.yaml"
    script:
        "scripts/synth.py"
