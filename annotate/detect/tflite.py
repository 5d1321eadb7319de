"""Loading a TFLite model shipped in this package (the Face Mesh and iris models).

A ``.tflite`` file is a flatbuffer of weights and ops: no code, nothing unpickled. It runs
on Google's TFLite runtime (``ai-edge-litert``).
"""
from __future__ import annotations

from pathlib import Path


def load_tflite(model_file: Path, input_shape: tuple[int, ...], threads: int = 1):
    """The interpreter on ``model_file``, tensors allocated; raises when the runtime or the
    file is missing, or when the model's first input is not ``input_shape``."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as err:
        raise ImportError("the facemesh backend runs on Google's TFLite runtime: pip install ai-edge-litert") from err
    if not model_file.is_file():
        raise FileNotFoundError(f"{model_file} is missing: reinstall the annotate package")
    interpreter = Interpreter(model_path=str(model_file), num_threads=threads)
    interpreter.allocate_tensors()
    shape = tuple(int(n) for n in interpreter.get_input_details()[0]["shape"])
    if shape != tuple(input_shape):
        raise ValueError(f"{model_file}: expected an input of {tuple(input_shape)}, got {shape}")
    return interpreter


def output_index(interpreter, size: int, model_file: Path) -> int:
    """The index of the model's output tensor of ``size`` values."""
    import numpy as np

    for out in interpreter.get_output_details():
        if int(np.prod(out["shape"])) == size:
            return out["index"]
    raise ValueError(f"{model_file}: no output of {size} values")
