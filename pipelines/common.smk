# Configuration and input functions shared by the rules.
from annotate.config import resolve_config, sequence_names, sequence_root

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
