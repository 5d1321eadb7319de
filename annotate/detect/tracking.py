"""Person ids over frames from 3D head positions, for captures without body skeletons.

Each frame's people (``annotate.detect.cross_view.FrameGroups``: one face centre in world
cm each) are matched to the live tracks by minimum total distance (Hungarian,
``scipy.optimize.linear_sum_assignment``). A pair is allowed when the distance is within
``gate_cm + speed_cm_per_frame * (frames since the track was last seen)``: a head moves
little between frames, more over a gap.

- **Gaps.** A track not matched in a frame stays alive, with its last position, for
  ``max_gap_frames`` frames: a person missed by the detectors for a few frames keeps their
  id when they come back near where they were.
- **Re-entries.** After ``max_gap_frames`` without a match the track ends; whoever appears
  later gets a new id, even at the same place (no appearance model: two people can swap
  places while unseen).

Ids are 0, 1, 2, ... in order of first appearance (per run of the stage).

**Where to search.** Searching every whole 1080p image for faces costs about 0.7 s of CPU per
view; a tracked head is where it was a frame ago, give or take its speed. So between whole-image
searches (at least every ``full_search_frames`` frame numbers, and whenever no track is live)
the faces are searched only inside a sphere about each live track's last face centre
(``search_priors``: radius ``SEARCH_RADIUS_CM`` plus ``speed_cm_per_frame`` per frame since
it was seen). A person who enters between two whole-image searches is found at the next one.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from annotate.detect.heads import HEAD_RADIUS_CM, HeadPriors

# Cost of a forbidden pair: above any real distance, so the assignment never prefers it.
FORBIDDEN = 1e9
# A track's position is its face centre (eyes, nose, mouth corners), and the face is what is
# searched for: a head-sized sphere about it holds the face however it turns.
SEARCH_RADIUS_CM = HEAD_RADIUS_CM


@dataclass(frozen=True)
class TrackingConfig:
    """gate_cm: largest head displacement between consecutive frames; speed_cm_per_frame:
    added per frame elapsed since the track was last seen (4 cm per frame is 1.2 m/s at
    30 fps); max_gap_frames: a track unseen for longer ends; full_search_frames: whole
    images are searched at least this often (frame numbers), around the live tracks' faces
    in between (module docstring; 1 = every frame whole)."""

    gate_cm: float = 25.0
    speed_cm_per_frame: float = 4.0
    max_gap_frames: int = 90
    full_search_frames: int = 30

    def __post_init__(self) -> None:
        if self.full_search_frames < 1:
            raise ValueError(f"full_search_frames must be >= 1, got {self.full_search_frames}")


@dataclass
class Tracker:
    """Live tracks: ids, last positions (T, 3) cm and the frames they were last seen."""

    config: TrackingConfig = TrackingConfig()
    ids: list = field(default_factory=list)
    positions: list = field(default_factory=list)
    last_frame: list = field(default_factory=list)
    next_id: int = 0
    last_full_search: int | None = None

    def _expire(self, frame: int) -> None:
        keep = [k for k, f in enumerate(self.last_frame) if frame - f <= self.config.max_gap_frames]
        self.ids = [self.ids[k] for k in keep]
        self.positions = [self.positions[k] for k in keep]
        self.last_frame = [self.last_frame[k] for k in keep]

    def update(self, frame: int, heads_world: np.ndarray) -> np.ndarray:
        """(G,) person ids of the frame's people at heads_world (G, 3) cm. Frames must come
        in increasing order."""
        heads = np.asarray(heads_world, dtype=np.float64).reshape(-1, 3)
        if self.last_frame and frame <= max(self.last_frame):
            raise ValueError(f"frame {frame} comes after frame {max(self.last_frame)}: frames must increase")
        self._expire(frame)
        out = np.full(len(heads), -1, dtype=np.int64)
        if self.ids and len(heads):
            distance = np.linalg.norm(np.asarray(self.positions)[:, None] - heads[None], axis=-1)   # (T, G)
            gate = self.config.gate_cm + self.config.speed_cm_per_frame * (frame - np.asarray(self.last_frame) - 1)
            cost = np.where(distance <= gate[:, None], distance, FORBIDDEN)
            rows, cols = linear_sum_assignment(cost)
            for t, g in zip(rows, cols):
                if cost[t, g] < FORBIDDEN:
                    out[g] = self.ids[t]
                    self.positions[t], self.last_frame[t] = heads[g], frame
        for g in np.flatnonzero(out < 0):
            out[g] = self.next_id
            self.ids.append(self.next_id)
            self.positions.append(heads[g])
            self.last_frame.append(frame)
            self.next_id += 1
        return out

    def search_priors(self, frame: int) -> HeadPriors | None:
        """Where to search ``frame`` for faces: spheres about the live tracks' last face
        centres (world cm; ``HeadPriors`` without anchors), or None when the whole images must
        be searched (no live track, or the last whole-image search is ``full_search_frames``
        or more frame numbers ago). Call before ``update``; a None return counts as this
        frame's whole-image search."""
        live = [k for k, f in enumerate(self.last_frame) if frame - f <= self.config.max_gap_frames]
        due = self.last_full_search is None or frame - self.last_full_search >= self.config.full_search_frames
        if due or not live:
            self.last_full_search = frame
            return None
        since = frame - np.asarray(self.last_frame, dtype=np.float64)[live]
        radius = SEARCH_RADIUS_CM + self.config.speed_cm_per_frame * np.maximum(since, 1.0)
        return HeadPriors(np.asarray(self.ids, dtype=np.int64)[live], np.asarray(self.positions)[live].reshape(-1, 3),
                          radius, np.full((len(live), 5, 3), np.nan))
