"""Why a triangulation run wrote no face: the step that found nothing, and what to change.

``annotate.labels.triangulate_stage`` raises ``NothingTriangulatedError`` with
``nothing_triangulated_message`` when a run writes no face at all, after writing its
outputs (the rejections say what was set aside and why).
"""
from __future__ import annotations

from pathlib import Path


class NothingTriangulatedError(ValueError):
    """The stage wrote no face; the message says which step found nothing. ``summary``:
    the run's counts (its outputs, empty of faces, are written)."""

    def __init__(self, message: str, summary):
        super().__init__(message)
        self.summary = summary


def nothing_triangulated_message(summary, backend, config, out_dir: Path) -> str:
    """Which step of a run that wrote no face found nothing, and what to change.

    summary: the run's ``StageSummary``; backend: its landmark backend; config: its
    ``StageConfig``; out_dir: where its outputs are."""
    head = (f"no face triangulated in {summary.frames} frames (backend {backend.name}, association "
            f"{summary.association}); see {out_dir / 'rejections.parquet'}. ")
    detector = getattr(getattr(backend, "face_detector", None), "name", None)
    if summary.views_read == 0:
        return head + (f"No view could be read ({summary.views_no_image} views without an image: "
                       f"{dict(summary.rejections)}): check detect.frames_from (video = hdVideos/hd_<camera>.mp4, "
                       f"images = hdImgs/<camera>/<camera>_%08d.jpg, auto = the video where there is one) "
                       f"and that the files exist.")
    if summary.detections == 0:
        what = f"the face detector {detector}" if detector else f"the {backend.name} backend"
        return head + (f"{what} found no face in any of the {summary.views_read} views read. Check that the "
                       f"frames show faces; for small or turned faces try detect.face_detector: mtcnn with "
                       f"a smaller detect.mtcnn.min_face_px or lower detect.mtcnn.thresholds. Cameras on their "
                       f"side or upside down: detect.image_rotation (the turns used: "
                       f"{summary.image_rotation.get('degrees_cw', 'none')}); the detectors find faces rolled "
                       f"by up to about 30 degrees from a quarter turn.")
    if summary.people_found == 0:
        if summary.association == "priors":
            return head + (f"{summary.detections} faces were detected but none lies within "
                           f"detect.association_max_cost = {config.association_max_cost} head radii of a "
                           f"person's head prior: check the calibration and the body skeletons.")
        return head + (f"{summary.detections} faces were detected in {summary.views_read} views but no face "
                       f"was matched between two views (detect.cross_view.max_epipolar = "
                       f"{config.cross_view.max_epipolar}, max_reprojection = {config.cross_view.max_reprojection} "
                       f"face sizes): a person must be detected in at least two views; check that the "
                       f"calibration belongs to these images (camera names, image size) and is in cm.")
    return head + (f"{summary.people_found} (frame, person) pairs were associated, but fewer than "
                   f"triangulate.min_landmarks = {config.min_landmarks} landmarks of each triangulated within "
                   f"triangulate.max_repro_error_px = {config.triangulation.max_repro_error_px} px in at least "
                   f"{config.triangulation.min_views} views ({dict(summary.rejections)}).")
