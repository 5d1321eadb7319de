# Configuration and input functions shared by the rules. Every output path comes from the
# results layout (annotate.core.results), which the stages and the CLI share.
from annotate.config import resolve_config, sequence_names, sequence_root, stage_config
from annotate.core.results import ResultsLayout

CFG = resolve_config(config)
RESULTS = CFG["results"]
LAYOUT = ResultsLayout(RESULTS)
SEQ = LAYOUT.sequence("{sequence}")  # the per-sequence paths, as wildcard patterns
SEQUENCES = sequence_names(CFG)
SEQUENCE_ROOT = str(sequence_root(CFG))
SYNTHETIC = CFG["source"] == "synthetic"
DOWNLOAD = not SYNTHETIC and CFG["download"]["enabled"]  # fetch each sequence before its ingest

wildcard_constraints:
    sequence="[A-Za-z0-9_.-]+",


def each_sequence(pattern):
    """``pattern`` (a path with ``{sequence}``) for every sequence of the config."""
    return expand(str(pattern), sequence=SEQUENCES)


def log(rule, per_sequence=True):
    return str(LAYOUT.log(rule, "{sequence}" if per_sequence else None))


def sequence_inputs(wildcards):
    """What ingest needs: the generated folder (synthetic), the download's summary (the
    download rule fetched the sequence) or the real calibration file."""
    if SYNTHETIC:
        return {"sequence_dir": f"{SEQUENCE_ROOT}/{wildcards.sequence}"}
    if DOWNLOAD:
        return {"download": str(LAYOUT.sequence(wildcards.sequence).download_summary)}
    return {"calibration": f"{SEQUENCE_ROOT}/{wildcards.sequence}/calibration_{wildcards.sequence}.json"}


def all_sequence_inputs():
    """sequence_inputs of every sequence, as one list."""
    from types import SimpleNamespace

    return [path for s in SEQUENCES for path in sequence_inputs(SimpleNamespace(sequence=s)).values()]


def label_outputs():
    return each_sequence(SEQ.labels("labels"))


DATASET = str(LAYOUT.dataset)


def dataset_outputs():
    """The dataset card and every enabled export (pipelines/dataset.smk)."""
    from annotate.stages.dataset import enabled_exports, export_folder

    exports = [f"{DATASET}/exports/{export_folder(e)}" for e in enabled_exports(CFG)]
    return [f"{DATASET}/card.json", f"{DATASET}/card.md", *exports]


def label_faces3d(sequence):
    """The faces3d table the labels of ``sequence`` use (config landmarks3d)."""
    return str(LAYOUT.sequence(sequence).faces3d_for_labels(CFG["landmarks3d"]))


def triangulate_outputs():
    """The cross-check tables with landmarks3d: both (the labels pull in the faces)."""
    if CFG["landmarks3d"] != "both":
        return []
    return each_sequence(SEQ.triangulate("crosscheck"))


AUDIT = str(LAYOUT.audit)


def audit_inputs(wildcards):
    """Labels, fits and the optional tables the audit reads (annotate.stages.audit.inputs)."""
    inputs = {
        "labels": label_outputs(),
        "fits": each_sequence(SEQ.labels("head_fits")),
        "model": str(LAYOUT.head_model),
        "bodies": each_sequence(SEQ.ingest("bodies")),
        "cameras": each_sequence(SEQ.ingest("cameras")),     # frame_offset, for the video sync check
        "dataset": f"{DATASET}/index.json",
    }
    if audit_detections_wanted():
        inputs["detections"] = each_sequence(SEQ.triangulate("detections2d"))
        # With detections come triangulated faces: their agreement with the published ones.
        inputs["crosscheck"] = each_sequence(SEQ.triangulate("crosscheck"))
    return inputs


def audit_detections_wanted():
    """The audit compares with 2D detections when audit.detections is on and a detector can
    run: always on synthetic sequences; on real data only when a real backend is named (fan,
    dlib): the default auto does not run a detector over a real sequence for the audit alone."""
    return CFG["audit"]["detections"] and (SYNTHETIC or CFG["detect"]["backend"] in ("fan", "dlib"))


def audit_outputs():
    """What the default target asks of the audit: the report (and the gate with audit.strict)."""
    if not CFG["audit"]["enabled"]:
        return []
    outputs = [f"{AUDIT}/report.html"]
    if CFG["audit"]["strict"]:
        outputs.append(f"{AUDIT}/passed")
    return outputs
