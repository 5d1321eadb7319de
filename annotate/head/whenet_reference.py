"""WHENet's published reference head and its landmark correspondence to face70.

WHENet (Zhou and Gregson, 2020) labels CMU Panoptic by fitting one fixed 58-point reference
head to each published face on 14 landmark pairs. The frame of that reference head is what
its labels call the zero pose, and this project's head frame takes its orientation from the
same head (``annotate.head.head_frame``), so labels mix with WHENet's.

The numbers are the published facts: the reference head's coordinates (cm; x toward the
subject's left ear, y up, z out of the face, the same axes as this project's head frame)
and the 14 pairs (face70 index, reference-head index).
"""
from __future__ import annotations

import numpy as np

# (58, 3) cm, reference-head frame. Rows 0-12: jaw contour (right ear -> chin 6 -> left
# ear); 13-28: eyes; 29-38: brows; 39-56: nose and lips.
REFERENCE_HEAD_CM = np.array([
    [-7.308957, 0.913869, 0.000000], [-6.775290, -0.730814, -0.012799],
    [-5.665918, -3.286078, 1.022951], [-5.011779, -4.876396, 1.047961],
    [-4.056931, -5.947019, 1.636229], [-1.833492, -7.056977, 4.061275],
    [0.000000, -7.415691, 4.070434], [1.833492, -7.056977, 4.061275],
    [4.056931, -5.947019, 1.636229], [5.011779, -4.876396, 1.047961],
    [5.665918, -3.286078, 1.022951], [6.775290, -0.730814, -0.012799],
    [7.308957, 0.913869, 0.000000], [5.311432, 5.485328, 3.987654],
    [4.461908, 6.189018, 5.594410], [3.550622, 6.185143, 5.712299],
    [2.542231, 5.862829, 4.687939], [1.789930, 5.393625, 4.413414],
    [2.693583, 5.018237, 5.072837], [3.530191, 4.981603, 4.937805],
    [4.490323, 5.186498, 4.694397], [-5.311432, 5.485328, 3.987654],
    [-4.461908, 6.189018, 5.594410], [-3.550622, 6.185143, 5.712299],
    [-2.542231, 5.862829, 4.687939], [-1.789930, 5.393625, 4.413414],
    [-2.693583, 5.018237, 5.072837], [-3.530191, 4.981603, 4.937805],
    [-4.490323, 5.186498, 4.694397], [1.330353, 7.122144, 6.903745],
    [2.533424, 7.878085, 7.451034], [4.861131, 7.878672, 6.601275],
    [6.137002, 7.271266, 5.200823], [6.825897, 6.760612, 4.402142],
    [-1.330353, 7.122144, 6.903745], [-2.533424, 7.878085, 7.451034],
    [-4.861131, 7.878672, 6.601275], [-6.137002, 7.271266, 5.200823],
    [-6.825897, 6.760612, 4.402142], [-2.774015, -2.080775, 5.048531],
    [-0.509714, -1.571179, 6.566167], [0.000000, -1.646444, 6.704956],
    [0.509714, -1.571179, 6.566167], [2.774015, -2.080775, 5.048531],
    [0.589441, -2.958597, 6.109526], [0.000000, -3.116408, 6.097667],
    [-0.589441, -2.958597, 6.109526], [-0.981972, 4.554081, 6.301271],
    [-0.973987, 1.916389, 7.654050], [-2.005628, 1.409845, 6.165652],
    [-1.930245, 0.424351, 5.914376], [-0.746313, 0.348381, 6.263227],
    [0.000000, 0.000000, 6.763430], [0.746313, 0.348381, 6.263227],
    [1.930245, 0.424351, 5.914376], [2.005628, 1.409845, 6.165652],
    [0.973987, 1.916389, 7.654050], [0.981972, 4.554081, 6.301271],
])
REFERENCE_HEAD_CM.setflags(write=False)

# The 14 correspondences, in WHENet's order: brow ends (17, 21, 26, 22), eye corners
# (45, 42, 39, 36), nostril wings (35, 31), mouth corners (54, 48), lower-lip centre (57),
# chin (8).
WHENET_FACE70 = (17, 21, 26, 22, 45, 42, 39, 36, 35, 31, 54, 48, 57, 8)
WHENET_REFERENCE = (38, 34, 33, 29, 13, 17, 25, 21, 54, 50, 43, 39, 45, 6)

# WHENet's gate: a landmark takes part when its averageScore exceeds this, and a face is
# fitted when more than WHENET_MIN_POINTS - 1 landmarks take part.
WHENET_SCORE_GATE = 0.1
WHENET_MIN_POINTS = 7


def reference_points_cm() -> np.ndarray:
    """(14, 3) the reference head's points paired with ``WHENET_FACE70``, cm (a copy)."""
    return REFERENCE_HEAD_CM[list(WHENET_REFERENCE)].copy()
