"""JSON Lines I/O: atomic writes and line-numbered read errors.

Every output file of the toolkit goes through :func:`atomic_write` (a folder
through :func:`atomic_directory`) so that a killed job never leaves a
half-written file behind: data goes to a temporary file in the same folder and
is renamed over the target only when complete.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import IO, Any, Iterable, Iterator


class JSONLError(ValueError):
    """A JSONL file could not be parsed; the message names the file and line."""


def dumps(obj: Any) -> str:
    """Canonical JSON: sorted keys, no NaN, UTF-8 text; same bytes in every process."""
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, allow_nan=False, separators=(", ", ": "))


@functools.lru_cache(maxsize=1)
def _current_umask() -> int:
    """The process umask (read once: ``os.umask`` can only be read by setting it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary sibling of ``path``; rename it over ``path`` on success only."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.chmod(tmp, 0o666 & ~_current_umask())  # mkstemp makes 0600; outputs get the usual permissions
    kwargs = {} if "b" in mode else {"encoding": encoding, "newline": "\n"}
    try:
        with os.fdopen(fd, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary sibling folder of ``path``; fill it, and on success it replaces ``path``.

    For outputs that are folders (a saved model, a checkpoint): a killed job
    leaves the previous folder or none, never a half-saved one. On failure the
    temporary folder is deleted. Its top-level entries get the usual permissions
    (``mkdtemp`` makes the folder 0700).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        mask = _current_umask()
        for child in tmp.iterdir():
            os.chmod(child, (0o777 if child.is_dir() else 0o666) & ~mask)
        os.chmod(tmp, 0o777 & ~mask)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> int:
    """Write rows atomically; returns the number of rows written."""
    count = 0
    with atomic_write(path) as handle:
        for row in rows:
            handle.write(dumps(row))
            handle.write("\n")
            count += 1
    return count


def write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> None:
    with atomic_write(path) as handle:
        json.dump(obj, handle, sort_keys=True, indent=indent, ensure_ascii=False, allow_nan=False)
        handle.write("\n")


def iter_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, dict]]:
    """Yield ``(line_number, object)``; blank lines are skipped, bad lines raise :class:`JSONLError`."""
    with open(path, encoding="utf-8") as handle:
        try:
            for lineno, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise JSONLError(f"{path}:{lineno}: invalid JSON: {exc.msg} (column {exc.colno})") from None
                if not isinstance(obj, dict):
                    raise JSONLError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
                yield lineno, obj
        except UnicodeDecodeError as exc:  # decoding runs ahead of the line loop: find the line again
            raise JSONLError(f"{path}:{_first_undecodable_line(path)}: not UTF-8 text ({exc.reason})") from None


def _first_undecodable_line(path: str | os.PathLike) -> int | str:
    with open(path, "rb") as handle:
        for lineno, raw in enumerate(handle, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                return lineno
    return "?"


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    return [obj for _, obj in iter_jsonl(path)]
