"""Frame offsets from the sound of hand-started cameras' videos (annotate.media.audio_sync)."""
from __future__ import annotations

import av
import numpy as np
import pytest

from annotate.cli import main as cli_main
from annotate.media.audio_sync import AudioSyncError, estimate_offsets, offsets_report, sequence_offsets

RATE, FPS, SECONDS = 16000, 30, 12


def world_sound(seconds: float, seed: int = 0) -> np.ndarray:
    """What the room heard: short bursts (claps, steps, words) at random times over a hum."""
    rng = np.random.default_rng(seed)
    sound = rng.normal(size=int(seconds * RATE)) * 0.01
    for t in np.sort(rng.uniform(0, seconds - 0.1, size=int(seconds * 2))):
        i = int(t * RATE)
        n = int(rng.uniform(0.01, 0.06) * RATE)
        sound[i:i + n] += rng.normal(size=n) * rng.uniform(0.2, 0.6) * np.exp(-np.arange(n) / (0.3 * n))
    return sound


def write_camera(path, sound: np.ndarray, start_s: float, gain: float, seed: int, fps=FPS, pictures=None,
                 audio=True) -> None:
    """A camera started at world time ``start_s``: SECONDS of pictures and, from the same
    instant, its microphone's sound (the room's, its own gain and noise)."""
    rng = np.random.default_rng(seed)
    i = int(round(start_s * RATE))
    heard = sound[i:i + SECONDS * RATE] * gain + rng.normal(size=SECONDS * RATE) * 0.005
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="mp4") as c:
        v = c.add_stream("libx264", rate=fps, options={"preset": "ultrafast"})
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        a = c.add_stream("aac", rate=RATE, layout="mono") if audio else None
        for k in range(pictures or SECONDS * fps):
            f = av.VideoFrame.from_ndarray(np.full((48, 64, 3), k % 250, np.uint8), format="rgb24")
            f.pts = k
            for p in v.encode(f):
                c.mux(p)
        for p in v.encode(None):
            c.mux(p)
        if a is not None:
            for j in range(0, len(heard) - 1024 + 1, 1024):
                f = av.AudioFrame.from_ndarray(heard[None, j:j + 1024].astype(np.float32), format="fltp",
                                               layout="mono")
                f.sample_rate, f.pts = RATE, j
                for p in a.encode(f):
                    c.mux(p)
            for p in a.encode(None):
                c.mux(p)


# World time each camera started; the offset of ingest.frame_offsets is the picture number
# that shows the reference's (00_00) picture 0: (start of 00_00 - start) x 30 pictures.
STARTS = {"00_00": 2.0, "00_01": 2.0 + 40 / FPS, "00_02": 2.0 - 15 / FPS, "00_03": 2.21}


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    seq = tmp_path_factory.mktemp("sync") / "cap1"
    sound = world_sound(20)
    for k, (name, start) in enumerate(STARTS.items()):
        write_camera(seq / "hdVideos" / f"hd_{name}.mp4", sound, start, gain=[1.0, 0.5, 1.6, 0.8][k], seed=k)
    return seq


def test_offsets_are_the_pictures_each_camera_started_earlier(capture):
    estimates = sequence_offsets(capture)
    truth = {name: (STARTS["00_00"] - start) * FPS for name, start in STARTS.items()}
    assert {n: e.offset for n, e in estimates.items()} == {"00_00": 0, "00_01": -40, "00_02": 15, "00_03": -6}
    for name, e in estimates.items():
        assert abs(e.offset_exact - truth[name]) <= 0.1, (name, e, truth[name])   # 00_03: -6.3
        assert not e.ambiguous, e
    # Another reference camera: the same instants, counted from its pictures.
    again = sequence_offsets(capture, reference="00_02")
    assert {n: e.offset for n, e in again.items()} == {"00_00": -15, "00_01": -55, "00_02": 0, "00_03": -21}


def test_the_command_prints_the_setting(capture, capsys):
    assert cli_main(["sync-offsets", str(capture)]) == 0
    out = capsys.readouterr().out
    assert 'cap1: {"00_01": -40, "00_02": 15, "00_03": -6}' in out and "frame_offsets:" in out


def test_videos_that_cannot_give_an_offset_are_named(tmp_path):
    sound = world_sound(20)
    seq = tmp_path / "cap"
    write_camera(seq / "hdVideos" / "hd_00_00.mp4", sound, 1.0, 1.0, 0)
    write_camera(seq / "hdVideos" / "hd_00_01.mp4", sound, 1.0, 1.0, 1, audio=False)
    with pytest.raises(AudioSyncError, match=r"hd_00_01.mp4: no audio track"):
        sequence_offsets(seq)
    write_camera(seq / "hdVideos" / "hd_00_01.mp4", sound, 1.0, 1.0, 1, fps=25, pictures=SECONDS * 25)
    with pytest.raises(AudioSyncError, match=r"hd_00_01.mp4: 25.000 pictures/s against 30.000"):
        sequence_offsets(seq)
    with pytest.raises(AudioSyncError, match="reference camera '00_07'"):
        estimate_offsets({"00_00": seq / "hdVideos" / "hd_00_00.mp4"}, reference="00_07")
    (seq / "hdVideos" / "hd_00_01.mp4").unlink()
    assert cli_main(["sync-offsets", str(seq)]) == 2                     # one video: nothing to compare


def test_a_quiet_room_is_ambiguous(tmp_path):
    """Each microphone's own noise and nothing the cameras heard together: no lag stands out
    (the tracks' own starts, where the encoder's priming silence ends, are not taken for a
    shared sound)."""
    quiet = np.zeros(20 * RATE)
    seq = tmp_path / "cap"
    write_camera(seq / "hdVideos" / "hd_00_00.mp4", quiet, 1.0, 1.0, 0)
    write_camera(seq / "hdVideos" / "hd_00_01.mp4", quiet, 2.0, 1.0, 1)
    estimate = sequence_offsets(seq)["00_01"]
    assert estimate.ambiguous, estimate
    assert "ambiguous" in offsets_report("cap", {"00_01": estimate})
