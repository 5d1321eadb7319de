"""Fixtures shared by the test modules."""
import numpy as np
import pytest

from annotate.head.face_model import base_face_landmarks


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    """The synthetic generator's base face: (70, 3) cm, canonical head frame."""
    return base_face_landmarks()


@pytest.fixture(scope="module")
def mesh(face):
    """The closed head mesh through the base face."""
    from annotate.head import head_mesh as hm

    return hm.build_head_mesh(face)


# The tiny sequence many end-to-end tests share: generated and labelled once per session.
TINY_SEQUENCE = "synth_tiny"


@pytest.fixture(scope="session")
def tiny_sequence(tmp_path_factory):
    """The folder holding ``TINY_SEQUENCE``: synthetic, 24 frames, 12 cameras, no video."""
    from annotate.synth.generate import generate_sequence
    from annotate.synth.scene import SceneConfig

    root = tmp_path_factory.mktemp("tiny_panoptic")
    generate_sequence(root, TINY_SEQUENCE, SceneConfig(seed=3, num_frames=24, num_cameras=12), render_video=False)
    return root


@pytest.fixture(scope="session")
def tiny_labelled(tiny_sequence, tmp_path_factory):
    """``TINY_SEQUENCE`` labelled by the workflow: its ``SequenceLayout``
    (``results/synth_tiny``; the head model is ``results/head_model.json``)."""
    from workflow_runs import label_sequence

    return label_sequence(tiny_sequence, TINY_SEQUENCE, tmp_path_factory.mktemp("tiny_results"))
