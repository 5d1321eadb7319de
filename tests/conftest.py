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
