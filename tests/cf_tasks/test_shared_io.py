"""The shared helpers that replaced per-module copies: atomic folders and progress bars."""

import io
import os

import pytest

from cf_tasks.jsonl import atomic_directory
from cf_tasks.progress import progress_bar


def test_atomic_directory_replaces_on_success_and_keeps_the_old_folder_on_failure(tmp_path):
    out = tmp_path / "model"
    with atomic_directory(out) as tmp:
        (tmp / "weights.bin").write_bytes(b"v1")
        (tmp / "sub").mkdir()
        assert not out.exists()  # nothing at the target until the folder is complete
    assert (out / "weights.bin").read_bytes() == b"v1"
    mask = os.umask(0)
    os.umask(mask)
    assert out.stat().st_mode & 0o777 == 0o777 & ~mask and (out / "sub").stat().st_mode & 0o777 == 0o777 & ~mask
    with pytest.raises(RuntimeError), atomic_directory(out) as tmp:
        (tmp / "weights.bin").write_bytes(b"half")
        raise RuntimeError("killed mid-save")
    assert (out / "weights.bin").read_bytes() == b"v1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no temp folder left behind
    with atomic_directory(out) as tmp:
        (tmp / "other.bin").write_bytes(b"v2")
    assert sorted(p.name for p in out.iterdir()) == ["other.bin"]  # replaced, not merged


def test_progress_bar_off_is_silent_and_on_draws():
    quiet, loud = io.StringIO(), io.StringIO()
    for enabled, stream in ((False, quiet), (True, loud)):
        bar = progress_bar(enabled, total=3, desc="work", unit="item", file=stream)
        bar.update(2)
        bar.set_postfix(loss="0.1")
        bar.close()
    assert quiet.getvalue() == ""
    assert "work" in loud.getvalue() and "2/3" in loud.getvalue()
