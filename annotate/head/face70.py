"""The left/right mirror map of the Panoptic face70 landmark layout (iBUG 68 + two pupils).

Pure and light (numpy only), so that training augmentation (a horizontal image flip) and
the audit's fault injection (left/right swapped landmark labels) share one definition.
"""
from __future__ import annotations

import numpy as np


def mirror_pairs_70() -> list[tuple[int, int]]:
    """Left/right landmark pairs of the Panoptic face70 layout (iBUG 68 + two pupils), 0-based."""
    pairs = [(i, 16 - i) for i in range(8)]                         # jaw 0-16 (8 is the chin)
    pairs += [(17 + i, 26 - i) for i in range(5)]                   # brows 17-21 <-> 26-22
    pairs += [(31, 35), (32, 34)]                                   # nostrils (33 is the tip)
    pairs += [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]   # eyes
    pairs += [(48, 54), (49, 53), (50, 52), (55, 59), (56, 58)]     # outer lips (51, 57 central)
    pairs += [(60, 64), (61, 63), (65, 67)]                         # inner lips (62, 66 central)
    pairs += [(68, 69)]                                             # pupils
    return pairs


def flip_permutation_70() -> np.ndarray:
    """(70,) int: after a horizontal flip, landmark ``i`` of the new face is ``old[perm[i]]``.

    An involution (``perm[perm] == identity``); the nose bridge 27-30, the nose tip 33, the
    chin 8 and the lips' centres 51, 57, 62, 66 map to themselves.
    """
    perm = np.arange(70)
    for a, b in mirror_pairs_70():
        perm[a], perm[b] = b, a
    return perm


FLIP_PERMUTATION_70 = flip_permutation_70()
FLIP_PERMUTATION_70.setflags(write=False)
