"""Writing outputs safely: refuse before work starts, write under a temporary name, rename at the end."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from landcover.errors import OutputError, OutputExistsError


def check_output(out: Path, overwrite: bool) -> None:
    """Refuse to start when the output cannot be written (before any work is done)."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise OutputExistsError(f"{out}: already exists")
    if not out.parent.is_dir():
        raise OutputError(f"{out.parent}: the output folder does not exist; create it first")


def temporary_path(out: Path, kind: str = "tmp") -> Path:
    """A hidden sibling of ``out`` (same file system, so the final rename is atomic)."""
    return out.parent / f".{out.name}.{kind}-{uuid.uuid4().hex[:8]}"


@contextmanager
def atomic_file(path: Path) -> Iterator[Path]:
    """Yield a temporary name beside ``path``; it replaces ``path`` when the block succeeds."""
    tmp = path.with_name(f"tmp.{path.name}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def replace_output(tmp: Path, out: Path) -> None:
    """Move a finished ``tmp`` to ``out``, removing what was there (checked by :func:`check_output`)."""
    if out.exists():
        shutil.rmtree(out) if out.is_dir() else out.unlink()
    os.replace(tmp, out)


def remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()
