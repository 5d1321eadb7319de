# Configuration and input functions shared by the rules.
from annotate.config import resolve_config, sequence_names, sequence_root, stage_config

CFG = resolve_config(config)
RESULTS = CFG["results"]
SEQUENCES = sequence_names(CFG)
SEQUENCE_ROOT = str(sequence_root(CFG))
SYNTHETIC = CFG["source"] == "synthetic"

wildcard_constraints:
    sequence="[A-Za-z0-9_.-]+",


def sequence_inputs(wildcards):
    """What ingest needs: the generated folder (synthetic) or the real calibration file."""
    if SYNTHETIC:
        return {"sequence_dir": f"{SEQUENCE_ROOT}/{wildcards.sequence}"}
    return {"calibration": f"{SEQUENCE_ROOT}/{wildcards.sequence}/calibration_{wildcards.sequence}.json"}


def label_outputs():
    return expand(f"{RESULTS}/{{sequence}}/labels/labels.parquet", sequence=SEQUENCES)


DATASET = f"{RESULTS}/dataset"


def dataset_outputs():
    """The dataset card and every enabled export (pipelines/dataset.smk)."""
    from annotate.datasets.stage import enabled_exports, export_folder

    exports = [f"{DATASET}/exports/{export_folder(e)}" for e in enabled_exports(CFG)]
    return [f"{DATASET}/card.json", f"{DATASET}/card.md", *exports]


# The faces3d table the head model and the labels use (config landmarks3d).
FACES3D_FOR_LABELS = {"published": "ingest/faces3d.parquet", "triangulated": "triangulate/faces3d.parquet",
                      "both": "triangulate/faces3d_combined.parquet"}[CFG["landmarks3d"]]


def label_faces3d(sequence):
    """``results/<sequence>/...faces3d.parquet`` that the labels of ``sequence`` use."""
    return f"{RESULTS}/{sequence}/{FACES3D_FOR_LABELS}"


def triangulate_outputs():
    """The cross-check tables with landmarks3d: both (the labels pull in the faces)."""
    if CFG["landmarks3d"] != "both":
        return []
    return expand(f"{RESULTS}/{{sequence}}/triangulate/crosscheck.parquet", sequence=SEQUENCES)


AUDIT = f"{RESULTS}/audit"


def audit_inputs(wildcards):
    """Labels, fits and the optional tables the audit reads (see annotate.pipeline.audit_inputs)."""
    inputs = {
        "labels": label_outputs(),
        "fits": expand(f"{RESULTS}/{{sequence}}/labels/head_fits.parquet", sequence=SEQUENCES),
        "model": f"{RESULTS}/head_model.json",
        "bodies": expand(f"{RESULTS}/{{sequence}}/ingest/bodies.parquet", sequence=SEQUENCES),
        "dataset": f"{DATASET}/index.json",
    }
    if audit_detections_wanted():
        inputs["detections"] = expand(f"{RESULTS}/{{sequence}}/triangulate/detections2d.parquet", sequence=SEQUENCES)
        # With detections come triangulated faces: their agreement with the published ones.
        inputs["crosscheck"] = expand(f"{RESULTS}/{{sequence}}/triangulate/crosscheck.parquet", sequence=SEQUENCES)
    return inputs


def audit_detections_wanted():
    """The audit compares with 2D detections when audit.detections is on and a detector can
    run: always on synthetic sequences; on real data only with a real backend (fan, dlib)."""
    return CFG["audit"]["detections"] and (SYNTHETIC or CFG["detect"]["backend"] != "synthetic")


def audit_outputs():
    """What the default target asks of the audit: the report (and the gate with audit.strict)."""
    if not CFG["audit"]["enabled"]:
        return []
    outputs = [f"{RESULTS}/audit/report.html"]
    if CFG["audit"]["strict"]:
        outputs.append(f"{RESULTS}/audit/passed")
    return outputs
