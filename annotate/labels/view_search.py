"""The landmark backend run on one frame's camera views, in this process or in workers.

A frame's views are independent until association: each camera's image is read and
searched for faces on its own. With image backends this is the triangulation stage's whole
cost (on real 1080p frames 1-2 s of CPU per view with Face Mesh and its crop consensus),
so ``ParallelViews`` runs the views in worker processes, each owning a fixed share of the
cameras for the whole run (camera c goes to worker c mod W): a camera's video decoder,
which reads its frames in order, and its image-rotation decision stay in one process. The
main process keeps the association, tracking and triangulation, which need every view.

Both classes answer ``detect(frame, requests)`` with one ``ViewResult`` per camera, and
``choose_crops(rig, tasks, config)`` with each face's crop consensus
(``annotate.geometry.crop_consensus``; in the workers, the faces dealt out in turn: the
consensus is the other large cost, about 0.3 s of CPU per pair of views of a face), so the
stage's output does not depend on the number of workers (tests/test_no_bodies.py).

Requests, per camera: ``None`` = do not search this view (no tracked head in it); an
(K, 4) array of head boxes to search (K = 0: the whole image).
"""
from __future__ import annotations

import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from annotate.detect.base import FaceDetections, LandmarkBackend, ViewInput
from annotate.geometry.cameras import CameraRig
from annotate.geometry.crop_consensus import ConsensusConfig, choose_alternatives

# One face's crop consensus: its alternatives per view ((K, L, 2) or None), and the views'
# (C,) tolerance factors (``annotate.geometry.crop_consensus.choose_alternatives``).
ConsensusTask = tuple[list, np.ndarray]


@dataclass(frozen=True)
class ViewResult:
    """One camera's answer: faces (face70; empty when the view was not searched), or
    no_image = (rejection reason code, message) when its image could not be had."""

    faces: FaceDetections
    no_image: tuple[str, str] | None = None


def choose_crops(rig: CameraRig, tasks: Sequence[ConsensusTask], config: ConsensusConfig) -> list[np.ndarray]:
    """Each task's (C,) chosen alternatives (``crop_consensus.choose_alternatives``)."""
    return [choose_alternatives(rig, alternatives, tolerance, config).choice for alternatives, tolerance in tasks]


class SerialViews:
    """The views of a frame one after the other, in this process. images: the cameras'
    frames (``annotate.labels.frame_views.CameraImages``; None for backends without images)."""

    def __init__(self, backend: LandmarkBackend, images=None):
        self.backend, self.images = backend, images

    @property
    def needs_images(self) -> bool:
        return self.backend.needs_images

    def detect(self, frame: int, requests: Sequence[np.ndarray | None],
               cameras: Sequence[int] | None = None) -> dict[int, ViewResult]:
        """{camera: ViewResult} for ``cameras`` (default: all), requests indexed by camera."""
        out = {}
        for c in range(len(requests)) if cameras is None else cameras:
            if requests[c] is None:
                out[c] = ViewResult(FaceDetections.empty())
                continue
            image = self.images.image(c, frame) if self.images is not None else None
            if self.backend.needs_images and image is None:
                out[c] = ViewResult(FaceDetections.empty(), self._why_missing(c, frame))
                continue
            boxes = np.asarray(requests[c], dtype=np.float64).reshape(-1, 4)
            out[c] = ViewResult(self.backend.detect(ViewInput(frame, c, image, boxes)).to_face70())
        return out

    def _why_missing(self, camera: int, frame: int) -> tuple[str, str]:
        reason, message = self.images.missing.get(camera, ("missing_image", ""))
        name = self.images.cameras[camera]
        return reason, (f"no image of frame {frame} for camera {name} in its {self.images.sources[camera]}: "
                        f"view skipped" + (f" ({message})" if message else ""))

    def choose_crops(self, rig: CameraRig, tasks: Sequence[ConsensusTask], config: ConsensusConfig) -> list[np.ndarray]:
        """Each task's (C,) chosen alternatives, here (``choose_crops``)."""
        return choose_crops(rig, tasks, config)

    def turn_summary(self, camera_names: Sequence[str]) -> dict:
        """The backend's image-rotation summary (``annotate.detect.orientation``), or {}."""
        summary = getattr(self.backend, "turn_summary", None)
        return summary(camera_names) if summary is not None else {}

    def close(self) -> None:
        pass


def views_in_this_process(make_backend: Callable[[], LandmarkBackend], seq_dir: str | Path,
                          cameras: tuple[str, ...], frames: np.ndarray, source: str,
                          offsets: dict[str, int], decode_threads: int = 0) -> SerialViews:
    """A SerialViews on a new backend, reading the cameras' frames itself."""
    from annotate.labels.frame_views import CameraImages

    backend = make_backend()
    images = (CameraImages(Path(seq_dir), cameras, frames, source, offsets, decode_threads)
              if backend.needs_images else None)
    return SerialViews(backend, images)


def _serve(connection, make_backend, seq_dir, cameras, frames, source, offsets) -> None:
    """A worker: answer (frame, requests, cameras) with ("ok", results) until None, then
    send ("done", turn summary). After an error, every request is answered with ("error",
    traceback) until None (the worker keeps reading, so that nothing sent to it is lost
    with the connection)."""
    try:
        import torch

        torch.set_num_threads(1)                          # one worker per CPU: no oversubscription
        views = views_in_this_process(make_backend, seq_dir, cameras, frames, source, offsets, decode_threads=1)
        while True:
            message = connection.recv()
            if message is None:
                connection.send(("done", views.turn_summary(cameras)))
                return
            if message[0] == "detect":
                connection.send(("ok", views.detect(*message[1:])))
            else:                                            # ("consensus", rig, tasks, config)
                connection.send(("ok", views.choose_crops(*message[1:])))
    except BaseException:                                 # noqa: BLE001 - reported to the parent
        error = traceback.format_exc()
    try:
        while connection.recv() is not None:
            connection.send(("error", error))
        connection.send(("done", {}))
    except (EOFError, OSError):                           # the parent is gone
        pass


def merge_turn_summaries(parts: Sequence[dict], cameras: Sequence[str]) -> dict:
    """One image-rotation summary from the workers' (each of its own cameras): per key
    ({camera: value} mappings), the cameras in rig order."""
    merged: dict = {}
    for part in parts:
        for key, values in part.items():
            merged.setdefault(key, {}).update(values)
    order = {name: k for k, name in enumerate(cameras)}
    return {key: dict(sorted(values.items(), key=lambda item: order[item[0]])) for key, values in merged.items()}


class ViewWorkerError(RuntimeError):
    """A view worker failed: the message names its cameras and carries its traceback."""


class ParallelViews:
    """The views of a frame in ``workers`` processes (module docstring). make_backend: a
    picklable callable that builds the backend in each worker."""

    def __init__(self, make_backend: Callable[[], LandmarkBackend], seq_dir: str | Path, cameras: tuple[str, ...],
                 frames: np.ndarray, source: str, offsets: dict[str, int], workers: int):
        import multiprocessing

        # spawn, not fork: the parent may already run torch's and TFLite's threads.
        context = multiprocessing.get_context("spawn")
        self.cameras = cameras
        self.shares = [list(range(w, len(cameras), workers)) for w in range(workers)]
        self._connections, self._processes = [], []
        for _ in range(workers):
            parent, child = context.Pipe()
            process = context.Process(target=_serve, daemon=True,
                                      args=(child, make_backend, str(seq_dir), cameras, np.asarray(frames),
                                            source, dict(offsets)))
            process.start()
            child.close()
            self._connections.append(parent)
            self._processes.append(process)
        self._turns: dict = {}
        self.needs_images = True

    def _receive(self, w: int, expected: str):
        try:
            kind, payload = self._connections[w].recv()
        except (EOFError, OSError):
            raise ViewWorkerError(f"the view worker for cameras {self._names(w)} ended without an answer "
                                  f"(exit code {self._processes[w].exitcode})") from None
        if kind == "error":
            raise ViewWorkerError(f"the view worker for cameras {self._names(w)} failed:\n{payload}")
        if kind != expected:
            raise ViewWorkerError(f"the view worker for cameras {self._names(w)} answered {kind!r}, not {expected!r}")
        return payload

    def _send(self, w: int, message) -> None:
        try:
            self._connections[w].send(message)
        except OSError:
            raise ViewWorkerError(f"the view worker for cameras {self._names(w)} is gone (exit code "
                                  f"{self._processes[w].exitcode})") from None

    def _until_done(self, w: int) -> dict:
        """The worker's closing summary, past any answer left unread by a failed frame."""
        while True:
            try:
                kind, payload = self._connections[w].recv()
            except (EOFError, OSError):
                return {}
            if kind == "done":
                return payload

    def _names(self, w: int) -> str:
        return ", ".join(self.cameras[c] for c in self.shares[w])

    def detect(self, frame: int, requests: Sequence[np.ndarray | None],
               cameras: Sequence[int] | None = None) -> dict[int, ViewResult]:
        wanted = set(range(len(requests)) if cameras is None else cameras)
        asked = []
        for w, share in enumerate(self.shares):
            mine = [c for c in share if c in wanted]
            if mine:
                self._send(w, ("detect", frame, list(requests), mine))
                asked.append(w)
        out = {}
        for w in asked:
            out.update(self._receive(w, "ok"))
        return out

    def choose_crops(self, rig: CameraRig, tasks: Sequence[ConsensusTask], config: ConsensusConfig) -> list[np.ndarray]:
        """As SerialViews.choose_crops, the tasks dealt out to the workers in turn."""
        if len(tasks) < 2:
            return choose_crops(rig, tasks, config)
        dealt = [list(range(w, len(tasks), len(self.shares))) for w in range(len(self.shares))]
        asked = []
        for w, mine in enumerate(dealt):
            if mine:
                self._send(w, ("consensus", rig, [tasks[k] for k in mine], config))
                asked.append(w)
        out: list = [None] * len(tasks)
        for w in asked:
            for k, choice in zip(dealt[w], self._receive(w, "ok")):
                out[k] = choice
        return out

    def turn_summary(self, camera_names: Sequence[str]) -> dict:
        """The workers' image-rotation summaries, merged (after ``close``)."""
        return self._turns

    def close(self) -> None:
        """End the workers, gathering their image-rotation summaries."""
        try:
            alive = [w for w, process in enumerate(self._processes) if process.is_alive()]
            for w in alive:
                self._connections[w].send(None)
            self._turns = merge_turn_summaries([self._until_done(w) for w in alive], self.cameras)
        finally:
            for process in self._processes:
                process.join(timeout=10)
                if process.is_alive():
                    process.terminate()
            for connection in self._connections:
                connection.close()
