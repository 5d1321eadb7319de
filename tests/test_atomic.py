"""Atomic writes leave no half-written file, and a rerun clears what a killed one left."""
import os

import pytest

from annotate.core.atomic import atomic_file, clear_leftovers, staged_folder, write_text_atomic
from annotate.core.tables import StreamingTableWriter


def killed_run_leftovers(target):
    """What kill -9 during writes of ``target`` leaves: a temp file and a staging folder."""
    (target.parent / f".{target.name}.12345.tmp").write_text("half")
    (target.parent / f".{target.name}.partial-12345").mkdir()
    (target.parent / f".{target.name}.partial-12345" / "x").write_text("half")
    (target.parent / f".{target.name}.old-999").mkdir()


def test_a_rerun_removes_the_leftovers_of_a_killed_run(tmp_path):
    target = tmp_path / "summary.json"
    killed_run_leftovers(target)
    (tmp_path / ".other.json.1.tmp").write_text("not ours")
    write_text_atomic(target, "{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.json.1.tmp", "summary.json"]


def test_folders_and_tables_clear_their_leftovers_too(tmp_path):
    folder = tmp_path / "whenet"
    killed_run_leftovers(folder)
    with staged_folder(folder) as staging:
        (staging / "train.txt").write_text("a")
    table = tmp_path / "labels.parquet"
    killed_run_leftovers(table)
    with StreamingTableWriter(table, "rejections") as out:
        out.write({"sequence": [], "stage": [], "frame": [], "person": [], "camera": [], "file": [], "reason": [],
                   "detail": []})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.parquet", "whenet"]


def test_a_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "a.txt"
    write_text_atomic(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_file(target) as tmp:
            tmp.write_text("new, half")
            raise RuntimeError("killed")
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["a.txt"]
    assert clear_leftovers(tmp_path / "missing" / "x") == 0
