"""Frame offsets of cameras started by hand, from the sound their videos recorded.

Phones and action cameras record sound. A clap, a door, speech: every camera hears the
same sounds, each at its own time since it started. Per camera video:

1. The audio track, decoded and resampled to mono ``RATE_HZ``, becomes an onset envelope:
   the log RMS of each ``HOP_S`` hop, its rises only (sounds that start, whatever their
   loudness at each microphone); the first ``EDGE_S`` are left out, where every track
   rises from the encoder's priming silence at its own start.
2. Each camera's envelope is cross-correlated (FFT) with the reference camera's within
   +-``max_offset_s``; the peak, refined to a fraction of a hop by a parabola, is the
   time between their hearing the same sounds. ``peak_ratio`` (the peak over the highest
   correlation more than ``SIDE_LOBE_S`` away from it) says how unambiguous it is.
3. In the container's clock, picture 0 of each video is at its first decoded picture's
   time and the audio at its first sample's, so the sound's delay becomes the picture
   offset of ``ingest.frame_offsets`` (``annotate.panoptic.frame_offsets``): the picture
   number of the reference camera's picture 0, ``round((delay + audio start - video start
   differences) x frame rate)``.

Cameras must share one frame rate. Only the first ``duration_s`` seconds of each video
are read: offsets between cameras started by hand are seconds, and the sounds at the start
of a take (a clap, the first words) are the ones all cameras hear.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

RATE_HZ = 16000           # audio resampled to this, mono
HOP_S = 0.005             # envelope hop: 5 ms (a sixth of a picture at 30 fps)
SIDE_LOBE_S = 0.25        # peak_ratio compares with correlations at least this far from the peak
MIN_PEAK_RATIO = 1.5      # below: two lags explain the sound nearly as well (ambiguous)
EDGE_S = 0.5              # onsets this close to a track's start are left out


class AudioSyncError(ValueError):
    """A video that cannot give an offset (no audio, another frame rate); names the file."""


@dataclass(frozen=True)
class Envelope:
    """onset: (N,) float64 onset strength per hop; start_s: the audio's first sample on the
    container's clock; video_start_s: picture 0's time; rate: the video's frame rate."""

    onset: np.ndarray
    start_s: float
    video_start_s: float
    rate: Fraction


@dataclass(frozen=True)
class OffsetEstimate:
    """One camera against the reference: offset (pictures, for ``ingest.frame_offsets``),
    offset_exact (pictures, before rounding: its distance to ``offset`` is the misalignment
    left), delay_s (how much later this camera heard the sounds, on the audio tracks),
    peak_ratio, and ``ambiguous`` when peak_ratio < MIN_PEAK_RATIO."""

    offset: int
    offset_exact: float
    delay_s: float
    peak_ratio: float

    @property
    def ambiguous(self) -> bool:
        return not self.peak_ratio >= MIN_PEAK_RATIO


def read_envelope(path: str | Path, duration_s: float = 300.0) -> Envelope:
    """The onset envelope of a video's first audio track (its first ``duration_s`` seconds)."""
    import av

    path = Path(path)
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as err:
        raise AudioSyncError(f"{path}: cannot open: {err}") from err
    try:
        if not container.streams.audio:
            raise AudioSyncError(f"{path}: no audio track: the offsets must be given by hand "
                                 f"(ingest.frame_offsets, docs/captures.md)")
        if not container.streams.video:
            raise AudioSyncError(f"{path}: no video track")
        video = container.streams.video[0]
        rate = Fraction(video.average_rate or video.guessed_rate or 0)
        if rate <= 0:
            raise AudioSyncError(f"{path}: the video's frame rate is not known")
        video_start = float(next(container.decode(video=0)).time)
        container.seek(0)
        onset, start = _onsets(container, container.streams.audio[0], duration_s, path)
    except av.FFmpegError as err:
        raise AudioSyncError(f"{path}: cannot decode: {err}") from err
    finally:
        container.close()
    return Envelope(onset, start, video_start, rate)


def _onsets(container, stream, duration_s: float, path: Path) -> tuple[np.ndarray, float]:
    """(N,) onset strength per hop of ``stream``, and its first sample's time (s)."""
    import av

    hop = int(round(RATE_HZ * HOP_S))
    resampler = av.AudioResampler(format="flt", layout="mono", rate=RATE_HZ)
    energies, rest, start, wanted = [], np.zeros(0, np.float32), None, int(duration_s * RATE_HZ)
    read = 0
    for frame in container.decode(stream):
        if start is None:
            start = float(frame.time if frame.time is not None else 0.0)
        for out in resampler.resample(frame):
            samples = np.concatenate([rest, out.to_ndarray().reshape(-1)])
            whole = len(samples) // hop * hop
            energies.append(np.sqrt(np.mean(samples[:whole].reshape(-1, hop).astype(np.float64) ** 2, axis=1)))
            rest = samples[whole:]
            read += whole
        if read >= wanted:
            break
    if start is None or read < hop * 10:
        raise AudioSyncError(f"{path}: the audio track holds no sound to compare")
    level = np.log(np.concatenate(energies)[: wanted // hop] + 1e-5)
    if np.ptp(level) < 1e-3:
        raise AudioSyncError(f"{path}: the audio track is silent")
    onset = np.maximum(np.diff(level, prepend=level[0]), 0.0)
    onset[:int(EDGE_S / HOP_S)] = 0.0           # the recording's own start (encoder priming) is no sound
    return onset, start


def _lag_hops(onset: np.ndarray, reference: np.ndarray, max_lag: int) -> tuple[float, float]:
    """(lag in hops, peak ratio): ``onset`` is ``reference`` delayed by the lag."""
    from scipy.signal import correlate, correlation_lags

    a = (onset - onset.mean()) / (onset.std() + 1e-12)
    b = (reference - reference.mean()) / (reference.std() + 1e-12)
    corr = correlate(a, b, mode="full", method="fft")
    lags = correlation_lags(len(a), len(b), mode="full")
    inside = np.abs(lags) <= max_lag
    corr, lags = corr[inside], lags[inside]
    i = int(np.argmax(corr))
    far = np.abs(lags - lags[i]) > SIDE_LOBE_S / HOP_S
    second = corr[far].max() if far.any() else 0.0
    ratio = float(corr[i] / second) if second > 0 else float("inf")
    shift = 0.0
    if 0 < i < len(corr) - 1:                     # a parabola through the peak and its neighbours
        left, mid, right = corr[i - 1], corr[i], corr[i + 1]
        denom = left - 2 * mid + right
        shift = float(0.5 * (left - right) / denom) if denom < 0 else 0.0
    return float(lags[i]) + shift, ratio


def estimate_offsets(videos: dict[str, str | Path], reference: str | None = None, max_offset_s: float = 60.0,
                     duration_s: float = 300.0) -> dict[str, OffsetEstimate]:
    """camera -> its offset against ``reference`` (default: the first camera by name, offset
    0), from each video's sound (module docstring). Raises AudioSyncError for a video
    without sound or with another frame rate."""
    if not videos:
        raise AudioSyncError("no videos to compare")
    names = sorted(videos)
    reference = reference or names[0]
    if reference not in videos:
        raise AudioSyncError(f"reference camera {reference!r} has no video; cameras: {names}")
    envelopes = {name: read_envelope(videos[name], duration_s) for name in names}
    rate = envelopes[reference].rate
    for name, env in envelopes.items():
        if abs(float(env.rate / rate) - 1) > 1e-3:
            raise AudioSyncError(f"{videos[name]}: {float(env.rate):.3f} pictures/s against {float(rate):.3f} for "
                                 f"{reference}: frame offsets need one frame rate")
    ref = envelopes[reference]
    out = {}
    for name in names:
        env = envelopes[name]
        lag, ratio = _lag_hops(env.onset, ref.onset, int(max_offset_s / HOP_S))
        delay = lag * HOP_S
        # A sound lies delay seconds further into this camera's audio than into the
        # reference's; each audio track starts (start_s - video_start_s) after its picture 0,
        # so it lies that much more (or less) after picture 0: the pictures this camera
        # started earlier than the reference.
        exact = (delay + (env.start_s - env.video_start_s) - (ref.start_s - ref.video_start_s)) * float(rate)
        if name == reference:
            exact, delay, ratio = 0.0, 0.0, float("inf")
        out[name] = OffsetEstimate(int(round(exact)), float(exact), float(delay), ratio)
    return out


def sequence_offsets(seq_dir: str | Path, reference: str | None = None, max_offset_s: float = 60.0,
                     duration_s: float = 300.0) -> dict[str, OffsetEstimate]:
    """``estimate_offsets`` over the videos of a capture folder (``hdVideos/hd_<camera>.mp4``)."""
    from annotate.panoptic.layout import SequenceLayout, list_video_cameras

    seq_dir = Path(seq_dir)
    layout = SequenceLayout(seq_dir.parent, seq_dir.name)
    cameras, _ = list_video_cameras(layout)
    if len(cameras) < 2:
        raise AudioSyncError(f"{layout.video_dir}: {len(cameras)} camera video(s) named hd_<camera>.mp4; "
                             f"offsets need two or more")
    return estimate_offsets({c: layout.video_file(c) for c in cameras}, reference, max_offset_s, duration_s)


def offsets_report(sequence: str, estimates: dict[str, OffsetEstimate]) -> str:
    """A table of the estimates and the ``ingest.frame_offsets`` setting they give."""
    lines = ["camera  offset  exact (pictures)  sound delay (s)  peak ratio"]
    for name, e in estimates.items():
        ratio = "reference" if np.isinf(e.peak_ratio) else f"{e.peak_ratio:.2f}"
        note = "  ambiguous: check by eye" if e.ambiguous else ""
        lines.append(f"{name:7s} {e.offset:6d}  {e.offset_exact:16.2f}  {e.delay_s:15.3f}  {ratio:>10s}{note}")
    shifts = ", ".join(f'"{n}": {e.offset}' for n, e in estimates.items() if e.offset and not e.ambiguous)
    lines += ["", "config:", "ingest:", "  frame_offsets:", f"    {sequence}: {{{shifts}}}"]
    unsure = [n for n, e in estimates.items() if e.ambiguous]
    if unsure:
        lines.append(f"    # not set, ambiguous: {', '.join(unsure)}")
    return "\n".join(lines)
