"""The audit report: self-contained HTML whose every image is a valid embedded PNG, contact
sheets from a shard, graceful "not measured" sections, and, in real headless Chromium,
every image loads.

The browser test skips when Debian's chromium/chromedriver (or selenium) are missing,
unless ANNOTATE_REQUIRE_BROWSER=1 (CI: tools/install_test_browser.sh installs them), in
which case it fails.
"""
import base64
import io
import os
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from PIL import Image

from annotate.audit.contact_sheet import (
    CropSource,
    head_axes_in_crop,
    visibility_colours,
)
from annotate.audit.report import flag_severity, write_report
from annotate.audit.screenshot import (
    browser_missing,
    headless_chromium,
    image_states,
    screenshot,
)
from annotate.core.schema import load_schema
from annotate.core.tables import to_arrow, write_table
from annotate.geometry.rotations import rot_z
from annotate.media.crops import CropSpec, crop_transforms
from tests.sample_rows import K, sample_columns

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FRAMES = 30
SHARD_FRAMES = 20
CAMERAS = ["00_01", "00_02"]
PERSONS = [0, 1]
# name -> (samples column, threshold, upper limit?, max_flagged_fraction)
CHECKS = {"fit_residual": ("fit_rms_cm", 1.0, True, 0.01), "fit_landmarks": ("fit_landmarks_used", 40, False, 0.5),
          "reprojection": ("reprojection_rel", 0.08, True, 0.01),
          "angular_speed": ("angular_speed_deg_s", 720, True, 0.5),
          "identity_jump": ("head_speed_cm_s", 400, True, 0.0), "crosscheck": ("crosscheck_cm", 2.0, True, 0.02),
          "uncertainty": ("uncertainty_deg", 5.0, True, 0.02)}


# ----------------------------------------------------------------------------- tables

def fit_values(rng: np.random.Generator, n: int, nan: bool) -> dict:
    """Per-fit measurements; person 1 frame 5 has a bad fit, person 0 frame 10 a rotation spike."""
    if nan:
        return {c: np.full(n, np.nan) for c in ("fit_rms_cm", "angular_speed_deg_s", "head_speed_cm_s",
                                                "body_distance_cm", "crosscheck_cm", "uncertainty_deg")} | {
            "fit_landmarks_used": np.full(n, 70)}
    values = {"fit_rms_cm": rng.gamma(4, 0.08, n), "fit_landmarks_used": rng.integers(55, 71, n),
              "angular_speed_deg_s": rng.gamma(2, 30, n), "head_speed_cm_s": rng.gamma(2, 10, n),
              "body_distance_cm": rng.gamma(3, 1.5, n), "crosscheck_cm": np.full(n, np.nan),
              "uncertainty_deg": rng.gamma(4, 0.3, n)}
    values["fit_rms_cm"][FRAMES + 5] = 5.0                  # person 1 (no crop in the shard): the worst flag
    values["fit_landmarks_used"][FRAMES + 5] = 20
    values["angular_speed_deg_s"][10] = 2500.0             # person 0, frame 10: has a crop on camera 00_01
    return values


def audit_samples(nan: bool = False, seed: int = 0) -> pd.DataFrame:
    """An audit samples table (schema audit_samples) over 2 people x 2 cameras x FRAMES frames."""
    rng = np.random.default_rng(seed)
    person, frame = np.repeat(PERSONS, FRAMES), np.tile(np.arange(FRAMES), len(PERSONS))
    fits = fit_values(rng, len(frame), nan)
    rows = []
    for c, camera in enumerate(CAMERAS):
        n = len(frame)
        rel = np.full(n, np.nan) if nan else rng.gamma(3, 0.01 + 0.02 * c, n)
        rows.append(pd.DataFrame({
            "sequence": "seq_a", "frame": frame, "person": person, "camera": camera, "valid": rng.random(n) > 0.05,
            "yaw": rng.uniform(-180, 180, n), "pitch": rng.uniform(-60, 60, n), "roll": rng.uniform(-30, 30, n),
            "reprojection_px": rel * 120, "reprojection_rel": rel, **fits}))
    samples = pd.concat(rows, ignore_index=True)
    return samples.assign(flagged=False, reasons="")


def audit_flags(samples: pd.DataFrame) -> pd.DataFrame:
    """Flags (schema audit_flags) from the thresholds in CHECKS; marks samples.flagged/reasons."""
    parts = []
    for name, (col, thr, upper, _) in CHECKS.items():
        v = samples[col].to_numpy(np.float64)
        with np.errstate(invalid="ignore"):
            hit = v > thr if upper else v < thr
        rows = samples.loc[hit, ["sequence", "frame", "person", "camera"]].assign(
            reason=name, value=v[hit], threshold=float(thr), detail=[f"{col} {x:.3g} vs {thr}" for x in v[hit]])
        parts.append(rows)
    flags = pd.concat(parts, ignore_index=True)
    for i, r in flags.iterrows():
        sel = ((samples.frame == r.frame) & (samples.person == r.person) & (samples.camera == r.camera)).to_numpy()
        samples.loc[sel, "reasons"] = ",".join(sorted(set(filter(None, samples.loc[sel, "reasons"].iloc[0].split(",")))
                                                     | {r.reason}))
    samples["flagged"] = samples["reasons"] != ""
    return flags


def check_metrics(samples: pd.DataFrame) -> dict:
    """metrics["checks"] in the audit's shape: pass/fail from CHECKS, None when nothing measured."""
    checks = {}
    for name, (col, thr, upper, max_fraction) in CHECKS.items():
        v = samples[col].to_numpy(np.float64)
        v = v[np.isfinite(v)]
        flagged = int((v > thr).sum() if upper else (v < thr).sum())
        frac = flagged / len(v) if len(v) else 0.0
        checks[name] = {"passed": None if not len(v) else frac <= max_fraction, "measured": len(v),
                        "flagged": flagged, "flagged_fraction": frac, "threshold": thr,
                        "max_flagged_fraction": max_fraction, "unit": "", "description": f"{col} check",
                        "median": float(np.median(v)) if len(v) else None,
                        "p99": float(np.percentile(v, 99)) if len(v) else None}
    return checks


def audit_cameras(nan: bool = False) -> pd.DataFrame:
    return pd.DataFrame({"sequence": "seq_a", "camera": CAMERAS, "labels": [60, 60], "detections": [55, 58],
                         "reprojection_median_px": [np.nan, np.nan] if nan else [3.1, 7.4],
                         "reprojection_median_rel": [np.nan, np.nan] if nan else [0.025, 0.061],
                         "reprojection_ratio": [np.nan, np.nan] if nan else [0.59, 1.41],
                         "sync_lag_frames": pd.array([None, None] if nan else [0, 2], dtype="Int16"),
                         "sync_score": [np.nan, np.nan] if nan else [1.0, 0.3],
                         "flagged": [False, not nan]})


def typed(df: pd.DataFrame, schema: str) -> pd.DataFrame:
    """The table as the audit writes and reads it back (declared Arrow types -> pandas).

    Declared columns the test does not build get a neutral value of their type (NaN, 0,
    False, "ok"), so the test follows schema additions.
    """
    df = df.copy()
    for field in load_schema(schema).arrow:
        if field.name not in df.columns:
            t = field.type
            df[field.name] = (np.nan if pa.types.is_floating(t) else False if pa.types.is_boolean(t)
                              else 0 if pa.types.is_integer(t) else "ok")
    # pandas' nullable integers (a null sync lag) go to Arrow as lists with None
    columns = {c: (df[c].astype(object).where(df[c].notna(), None).tolist()
                   if pd.api.types.is_extension_array_dtype(df[c]) and pd.api.types.is_integer_dtype(df[c])
                   else df[c].to_numpy()) for c in df.columns}
    return to_arrow(columns, schema).to_pandas()


def no_flags() -> pd.DataFrame:
    """An empty flags table with the declared types."""
    return typed(audit_flags(audit_samples()).iloc[:0], "audit_flags")


def rejections_table() -> pd.DataFrame:
    return to_arrow({"sequence": ["seq_a"] * 3, "stage": ["ingest.faces", "ingest.faces", "label.fit"],
                     "frame": [3, 4, 5], "person": [0, 1, None], "camera": [None, None, None],
                     "file": ["a.json", "b.json", "c.json"], "reason": ["bad_json", "bad_json", "fit_failed"],
                     "detail": ["x", "y", "z"]}, "rejections").to_pandas()


def write_shard(path) -> CropSource:
    """A tiny shard: person 0, camera 00_01, frames 0..SHARD_FRAMES-1, mixed visibility codes."""
    cols = sample_columns(SHARD_FRAMES, sequence="seq_a", camera="00_01", size=96)
    vis = np.zeros((SHARD_FRAMES, 70), np.uint8)
    vis[:, 30:40], vis[:, 40:50], vis[:, 50:55] = 2, 3, 1
    cols["landmark_visibility"] = vis
    write_table(cols, path, "samples")
    return CropSource(path)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """(path, samples, flags, metrics) of a full report with contact sheets."""
    root = tmp_path_factory.mktemp("audit")
    samples = audit_samples()
    flags = audit_flags(samples)
    metrics = {"passed": False, "counts": {"labels": len(samples), "rejections": {"bad_json": 2}},
               "checks": check_metrics(samples)}
    crops = write_shard(root / "shard.parquet")
    path = write_report(root / "out" / "report.html", typed(samples, "audit_samples"), typed(flags, "audit_flags"),
                        typed(audit_cameras(), "audit_cameras"), metrics, rejections_table(), crops,
                        contact_sheet_size=8, seed=1)
    return path, samples, flags, metrics


# ----------------------------------------------------------------------------- HTML checks

class Tags(HTMLParser):
    """Every start tag with its attributes, and the text."""

    def __init__(self):
        super().__init__()
        self.tags, self.text = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def parse(path) -> Tags:
    parser = Tags()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def embedded_pngs(tags: Tags) -> list[Image.Image]:
    """Decode every <img>; fails unless each is a data: URI holding a valid PNG."""
    images = []
    for tag, attrs in tags.tags:
        if tag != "img":
            continue
        prefix = "data:image/png;base64,"
        assert attrs["src"].startswith(prefix), attrs["src"][:60]
        data = base64.b64decode(attrs["src"][len(prefix):], validate=True)
        assert data.startswith(PNG_SIGNATURE)
        Image.open(io.BytesIO(data)).verify()
        img = Image.open(io.BytesIO(data))
        img.load()
        assert img.format == "PNG" and img.width > 50 and img.height > 50
        images.append(img)
    return images


def assert_self_contained(tags: Tags) -> None:
    """No script, no stylesheet link, no external URL, links only to in-page anchors."""
    names = [t for t, _ in tags.tags]
    assert "script" not in names and "link" not in names and "iframe" not in names
    for tag, attrs in tags.tags:
        for key, value in attrs.items():
            if key in ("src", "href", "action", "srcset", "poster"):
                assert value.startswith(("data:", "#")), (tag, key, value[:80])
        assert "url(" not in attrs.get("style", "")


def test_report_is_self_contained_with_valid_pngs(report):
    path, samples, flags, metrics = report
    tags = parse(path)
    assert_self_contained(tags)
    images = embedded_pngs(tags)
    # summary has no plot; coverage 5, fit 3 + rejections 1, cameras 5, temporal 3, uncertainty 1,
    # flagged 1, two contact sheets; crosscheck is all NaN
    assert len(images) == 21
    assert [p.name for p in path.parent.iterdir()] == ["report.html"]             # no temporary file left
    text = " ".join(tags.text)
    assert "crosscheck_cm: not available" in text
    ids = {a.get("id") for _, a in tags.tags}
    assert {"summary", "coverage", "fit", "cameras", "temporal", "crosscheck", "uncertainty", "flagged",
            "sheets"} <= ids


def test_checks_table_colours_each_result(report):
    path, _, _, metrics = report
    rows = [a.get("class") for t, a in parse(path).tags if t == "tr" and a.get("class")]
    expected = [{None: "notrun", True: "pass", False: "fail"}[m["passed"]] for m in metrics["checks"].values()]
    assert rows == expected
    assert {"notrun", "pass", "fail"} <= set(rows)                  # the tables exercise every state


def test_worst_sheet_skips_flagged_labels_without_crops(report):
    path, samples, flags, _ = report
    text = " ".join(parse(path).text)
    # Only person 0 on camera 00_01 has crops: its worst flag is the rotation spike at frame
    # 10. Every flagged label ranked above it (higher severity) has no crop and is skipped,
    # the two views of person 1's bad fit among them.
    keys = ["sequence", "frame", "person", "camera"]
    severity = flags.assign(s=flag_severity(flags)).groupby(keys)["s"].max()
    spike = severity[("seq_a", 10, 0, "00_01")]
    skipped = int((severity > spike).sum())
    assert skipped >= 2
    assert f"1 flagged labels, worst first; {skipped} worse-ranked flagged labels have no crop" in text
    assert "seq_a/10/0/00_01 angular_speed x3.47" in text
    assert f"8 of the {SHARD_FRAMES} audited labels that have a crop in the shards " \
           f"({len(samples) - SHARD_FRAMES} have none" in text


def test_report_degrades_when_nothing_was_measured(tmp_path):
    samples = audit_samples(nan=True)
    empty_flags = no_flags()
    metrics = {"checks": check_metrics(samples)}
    assert all(m["passed"] is None for n, m in metrics["checks"].items() if n != "fit_landmarks")
    path = write_report(tmp_path / "r.html", typed(samples, "audit_samples"), empty_flags,
                        typed(audit_cameras(nan=True), "audit_cameras"), metrics, None,
                        write_shard(tmp_path / "s.parquet"))
    tags = parse(path)
    assert_self_contained(tags)
    images = embedded_pngs(tags)
    text = " ".join(tags.text)
    # left: the angle plots, counts per sequence/camera/person, fit_landmarks_used, random crops
    assert len(images) == 7
    for what in ("fit_rms_cm distribution", "reprojection_rel", "angular_speed_deg_s distribution",
                 "per-track time series", "uncertainty_deg: not measured", "crosscheck_cm: not available",
                 "rejections: no rejections table given", "worst flagged samples: no label was flagged",
                 "reprojection_median_px per camera: not measured", "sync lag per camera: not measured",
                 "sync score per camera: not measured", "no label was flagged"):
        assert what in text, what


def test_report_with_empty_tables(tmp_path):
    samples = typed(audit_samples().iloc[:0], "audit_samples")
    flags = no_flags()
    path = write_report(tmp_path / "r.html", samples, flags, typed(audit_cameras(), "audit_cameras").iloc[:0],
                        {"checks": {}}, rejections_table().iloc[:0], None)
    tags = parse(path)
    assert embedded_pngs(tags) == []
    text = " ".join(tags.text)
    for what in ("no checks in the metrics", "valid labels: 0 of 0", "contact sheets: no dataset shards given",
                 "per-camera consistency: no cameras table rows",
                 "no rejections", "no label was flagged"):
        assert what in text, what


# ----------------------------------------------------------------------------- crops, axes, severity

def test_crop_source_reads_keys_and_skips_missing(tmp_path):
    crops = write_shard(tmp_path / "s.parquet")
    assert len(crops) == SHARD_FRAMES
    found, missing = crops.read([("seq_a", 3, 0, "00_01"), ("seq_a", 3, 1, "00_01"), ("seq_b", 0, 0, "00_01")])
    assert [c.key for c in found] == [("seq_a", 3, 0, "00_01")]
    assert missing == [("seq_a", 3, 1, "00_01"), ("seq_b", 0, 0, "00_01")]
    assert found[0].image.shape == (96, 96, 3) and found[0].record["frame"] == 3
    assert crops.has([("seq_a", np.int32(7), np.int64(0), "00_01")]).tolist() == [True]
    assert len(CropSource([])) == 0


def test_head_axes_follow_the_rotation_in_the_crop():
    box = np.array([[900.0, 480, 1020, 600]])                     # centred on the principal point
    A = crop_transforms(box, CropSpec(size=128))[0]
    record = {"R_cam_head": np.eye(3).reshape(9), "head_centre_cam": np.array([0.0, 0, 300]), "K": K.reshape(9),
              "dist": np.zeros(5), "crop_from_image": A.reshape(6), "helmet_radius_cm": 12.5}
    axes = head_axes_in_crop(record)
    scale = A[0, 0] * K[0, 0] * 12.5 / 300                         # crop px per head-radius at the head
    np.testing.assert_allclose(axes[0], [scale, 0], atol=1e-9)    # head x = camera x: right
    np.testing.assert_allclose(axes[1], [0, scale], atol=1e-9)    # head y = camera y: down
    np.testing.assert_allclose(axes[2], [0, 0], atol=1e-9)        # head z along the ray: a point
    record["R_cam_head"] = rot_z(np.radians(90.0)).reshape(9)     # head x -> camera y
    turned = head_axes_in_crop(record)
    np.testing.assert_allclose(turned[0], [0, scale], atol=1e-9)
    np.testing.assert_allclose(turned[1], [-scale, 0], atol=1e-9)
    assert head_axes_in_crop({**record, "K": None}) is None


def test_visibility_colours():
    from annotate.audit import contact_sheet
    from annotate.head import visibility

    assert (contact_sheet.VISIBLE, contact_sheet.SELF_OCCLUDED, contact_sheet.OCCLUDED_BY_OTHER) == \
        (visibility.VISIBLE, visibility.SELF_OCCLUDED, visibility.OCCLUDED_BY_OTHER)
    c = visibility_colours(np.array([0, 1, 2, 3, 4, 5], np.uint8))
    assert c[0] != c[2] != c[3] != c[0]
    assert c[1] == c[4] == c[5] and c[1] not in (c[0], c[2], c[3])


def test_flag_severity():
    flags = pd.DataFrame({"value": [3.0, 20, 5, np.nan], "threshold": [1.0, 40, 0, 2]})
    np.testing.assert_allclose(flag_severity(flags), [3.0, 2.0, 1.0, 1.0])


# ----------------------------------------------------------------------------- the browser

def require_browser() -> None:
    """Skip without the browser, or fail when ANNOTATE_REQUIRE_BROWSER=1 (CI)."""
    why = browser_missing()
    if why is None:
        return
    if os.environ.get("ANNOTATE_REQUIRE_BROWSER") == "1":
        pytest.fail(f"ANNOTATE_REQUIRE_BROWSER=1 but {why}")
    pytest.skip(why)


def test_every_image_loads_in_headless_chromium(report, tmp_path):
    require_browser()
    path = report[0]
    expected = sum(1 for t, _ in parse(path).tags if t == "img")
    broken = tmp_path / "broken.html"
    broken.write_text('<html><body><img src="data:image/png;base64,AAAA"></body></html>')
    with headless_chromium() as driver:
        states = image_states(driver, path)
        control = image_states(driver, broken)
    assert len(states) == expected > 0
    bad = [i for i, s in enumerate(states) if not (s["complete"] and s["naturalWidth"] > 0 and s["naturalHeight"] > 0)]
    assert bad == [], f"images {bad} did not load"
    assert control[0]["naturalWidth"] == 0                    # the check does see a broken image


def test_screenshot(report, tmp_path):
    require_browser()
    out = screenshot(report[0], tmp_path / "shot.png", width=640, height=480)
    img = Image.open(out)
    assert img.size == (640, 480)
    assert np.unique(np.asarray(img.convert("L"))).size > 10    # rendered content, not a blank page


def test_readme_test_command_is_what_ci_runs():
    """The README's test command (which installs the browser) is .ci/run's command."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text()
    command = (root / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert "tools/install_test_browser.sh" in command and "ANNOTATE_REQUIRE_BROWSER=1" in command
    assert f"\n    {command}\n" in readme
