"""Writing outputs safely.

Every command writes its outputs through :class:`OutputSet`:

1. **Lock.** An exclusive ``flock`` on ``.NAME.lock`` beside the main output, held for the whole
   run. A second run into the same output fails at once
   (:class:`~landcover.errors.OutputLockedError`, naming the pid of the run that holds it). The
   kernel releases the lock when a process dies, so a lock left by a killed run is simply taken over
   (with a warning).
2. **Recover and clean up.** Under the lock, an interrupted replacement (see 4) is finished or
   rolled back, and the temporaries a dead run left beside the outputs (``.NAME.tmp-*``,
   ``.NAME.work-*``, ``.NAME.old-*``) are removed, with a log line. Resumable work
   (``.NAME.partial``) is kept.
3. **Check before work.** Outputs that exist need ``overwrite``; the output folder must exist, be a
   folder and be writable; an expected size can be checked against the free space.
4. **Replace as one set.** New outputs are written under temporary names
   (:meth:`OutputSet.temporary`) and put in place by :meth:`OutputSet.commit`: a journal
   ``.NAME.replace.json`` is written, the old outputs are moved aside (the main one last), the new
   ones renamed in (the main one last), then the old ones deleted. Killed at any point, the next run
   finds the journal and either completes the new set (when the new main output is in place) or
   restores the old one. At every instant the folder holds a complete old or a complete new set
   (once recovered)."""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
import socket
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from landcover.errors import OutputError, OutputExistsError, OutputLockedError, ResumeError

log = logging.getLogger(__name__)

LEFTOVER_KINDS = ("tmp", "work", "old")


def _hook(stage: str) -> None:
    """Called between the steps of :meth:`OutputSet.commit` (tests inject faults here)."""


# ------------------------------------------------------------------------------------- checks
def check_output(out: Path, overwrite: bool) -> None:
    """Refuse to start when the output cannot be written (before any work is done)."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise OutputExistsError(f"{out}: already exists")
    parent = out.parent
    if not parent.exists():
        raise OutputError(f"{parent}: the output folder does not exist; create it first")
    if not parent.is_dir():
        raise OutputError(f"{parent}: is a file, not a folder; the output must go into a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{parent}: the output folder is not writable")
    if len(out.name.encode()) > 200:  # leaves room for the temporary names' suffixes
        raise OutputError(f"{out.name}: the output name is too long ({len(out.name.encode())} "
                          "bytes; at most 200)")


def check_kind(out: Path, folder: bool) -> None:
    """An existing output must be of the kind that will replace it (a folder or a file)."""
    out = Path(out)
    if out.exists() and out.is_dir() != folder:
        what = "a folder" if out.is_dir() else "a file"
        raise OutputError(f"{out}: is {what}; this output is {'a folder' if folder else 'a file'}"
                          ", choose another name")


def check_space(folder: Path, nbytes: float, what: str) -> None:
    """Refuse when ``folder``'s file system has less free space than ``nbytes`` (an estimate)."""
    free = shutil.disk_usage(folder).free
    if nbytes > free:
        raise OutputError(f"{folder}: {_size(free)} free, but {what} needs about "
                          f"{_size(nbytes)}; free some space or write elsewhere")


def _size(nbytes: float) -> str:
    for unit in ("kB", "MB", "GB"):
        nbytes /= 1000
        if nbytes < 1000 or unit == "GB":
            return f"{nbytes:.1f} {unit}"
    return ""  # pragma: no cover


# ----------------------------------------------------------------------------------- temporaries
def temporary_path(out: Path, kind: str = "tmp") -> Path:
    """A hidden sibling of ``out`` (same file system, so the final rename is atomic)."""
    out = Path(out)
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


def remove(path: Path) -> None:
    path = Path(path)
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path, ignore_errors=True)


def leftovers(out: Path) -> list[Path]:
    """Temporaries of ``out`` that a run leaves only when it dies (not resumable work)."""
    out = Path(out)
    if not out.parent.is_dir():
        return []
    found = []
    for kind in LEFTOVER_KINDS:
        found += out.parent.glob(f".{_glob_escape(out.name)}.{kind}-*")
    return sorted(found)


def _glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


# ------------------------------------------------------------------------------------------ lock
class _Lock:
    """An exclusive flock on ``.NAME.lock``; released by the kernel when the process dies."""

    def __init__(self, out: Path):
        self.out = Path(out)
        self.path = self.out.parent / f".{self.out.name}.lock"
        self.fd: int | None = None

    def acquire(self) -> None:
        import fcntl

        for _ in range(20):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise
                holder = os.pread(fd, 400, 0).decode(errors="replace").strip()
                os.close(fd)
                pid = _field(holder, "pid")
                raise OutputLockedError(
                    f"{self.out}: is being written by another landcover run"
                    f"{f' (pid {pid})' if pid else ''}",
                    hint="wait for it or choose another --out") from None
            try:  # the holder may have removed the file between our open and our lock: retry
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            stale = os.pread(fd, 400, 0).decode(errors="replace").strip()
            if stale:
                log.warning("%s: taking over the lock of a landcover run that ended without "
                            "releasing it (%s)", self.out, stale)
            info = f"pid={os.getpid()} host={socket.gethostname()} since={time.time():.0f}"
            os.ftruncate(fd, 0)
            os.pwrite(fd, info.encode(), 0)
            self.fd = fd
            return
        raise OutputLockedError(f"{self.out}: cannot take the output lock {self.path}")

    def release(self) -> None:
        if self.fd is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.path)  # before unlocking: a waiting run then re-checks the inode
        os.close(self.fd)
        self.fd = None


def _field(text: str, key: str) -> str | None:
    for part in text.split():
        if part.startswith(f"{key}="):
            return part.split("=", 1)[1]
    return None


# --------------------------------------------------------------------------------- the output set
class OutputSet:
    """The outputs of one run: locked, checked, written under temporary names, replaced as one.

    Args:
        paths: the outputs; the first is the main one (the map, dataset or bundle): it is locked,
            and replaced last, so its presence means the set is complete.
        overwrite: existing outputs may be replaced.
        folders: which of ``paths`` are folders (default: the main one is a folder when it exists
            as one).
    """

    def __init__(self, paths: Sequence[Path], overwrite: bool = False,
                 folders: Sequence[bool] | None = None):
        self.paths = [Path(p).absolute() for p in paths]
        self.main = self.paths[0]
        self.overwrite = overwrite
        self.folders = list(folders) if folders is not None else None
        self.journal = self.main.parent / f".{self.main.name}.replace.json"
        self._lock = _Lock(self.main)
        self._temporaries: list[Path] = []

    def __enter__(self) -> OutputSet:
        check_output(self.main, self.overwrite)  # folder exists and is writable: lockable
        self._lock.acquire()
        try:
            recover(self.journal)
            for path in self.paths:
                stale = leftovers(path)
                for p in stale:
                    remove(p)
                if stale:
                    log.info("removed %d left-over(s) of an earlier run of %s: %s", len(stale),
                             path.name, ", ".join(p.name for p in stale))
                check_output(path, self.overwrite)
            if self.folders is not None:
                for path, folder in zip(self.paths, self.folders):
                    check_kind(path, folder)
        except BaseException:
            self._lock.release()
            raise
        return self

    def __exit__(self, kind, exc, tb) -> bool:
        if isinstance(exc, OSError) and exc.filename is None:
            exc.filename = str(self.main)  # a failed write (ENOSPC ...) names the output
        try:
            for p in self._temporaries:
                remove(p)
        finally:
            self._lock.release()
        return False

    def temporary(self, path: Path | None = None, kind: str = "tmp") -> Path:
        """A temporary name for ``path`` (default the main output), removed when the run ends."""
        tmp = temporary_path(Path(path) if path is not None else self.main, kind)
        self._temporaries.append(tmp)
        return tmp

    def commit(self, new: dict[Path, Path]) -> None:
        """Put the finished temporaries ``{output: temporary}`` in place as one set.

        Outputs may be given relative to the working directory: the journal records absolute
        paths, so a later run from any folder can recover it."""
        new = {Path(k).absolute(): Path(v).absolute() for k, v in new.items()}
        order = [p for p in self.paths if p in new and p != self.main]
        order += [p for p in new if p not in order and p != self.main]
        if self.main in new:
            order.append(self.main)
        entries = [{"final": str(p), "tmp": str(new[p]), "had_old": p.exists(),
                    "aside": str(temporary_path(p, "old"))} for p in order]
        with atomic_file(self.journal) as tmp:
            tmp.write_text(json.dumps({"main": str(self.main), "entries": entries}))
        _hook("journal")
        for e in entries:  # the old set aside, the main output last
            if e["had_old"]:
                os.replace(e["final"], e["aside"])
                _hook(f"aside {Path(e['final']).name}")
        for e in entries:  # the new set in, the main output last: then it is complete
            os.replace(e["tmp"], e["final"])
            _hook(f"in {Path(e['final']).name}")
        recover(self.journal)  # deletes the old set and the journal


def recover(journal: Path) -> None:
    """Finish (new main output in place) or roll back (otherwise) an interrupted replacement.

    Raises:
        OutputError: the journal cannot be acted on (a file it names cannot be moved); the
            message names the journal and what to do.
    """
    journal = Path(journal)
    if not journal.is_file():
        return
    try:
        data = json.loads(journal.read_text())
        entries, main = list(data["entries"]), data["main"]
        for e in entries:  # journals of older versions may hold paths relative to their run's cwd
            for key in ("final", "tmp", "aside"):
                e[key] = str(_beside(e[key], journal))
            e["had_old"] = bool(e["had_old"])
        main = str(_beside(main, journal))
    except (OSError, ValueError, KeyError, TypeError):
        journal.unlink()
        return
    try:
        _recover(entries, main)
    except OSError as exc:
        raise OutputError(f"{journal}: cannot finish the interrupted replacement of {main} "
                          f"({exc.strerror or exc}); check the files beside it, then delete the "
                          "journal") from None
    journal.unlink()


def _beside(path: str, journal: Path) -> Path:
    """An absolute path; a relative one (older journals) is taken as a sibling of the journal,
    where every output and temporary of its set lies."""
    p = Path(path)
    return p if p.is_absolute() else journal.parent / p.name


def _recover(entries: list[dict], main: str) -> None:
    if not entries:
        return
    # the main output is replaced last; a journal without it: its last entry decides
    last = next((e for e in entries if e["final"] == main), entries[-1])
    committed = Path(last["final"]).exists() and (
        not last["had_old"] or Path(last["aside"]).exists() or not Path(last["tmp"]).exists())
    if committed:
        for e in entries:
            remove(Path(e["aside"]))
    else:
        log.warning("%s: an earlier run was killed while replacing its outputs; restoring the old "
                    "ones", main)
        for e in entries:
            final, aside = Path(e["final"]), Path(e["aside"])
            if e["had_old"]:
                if aside.exists():
                    remove(final)
                    os.replace(aside, final)
            elif not Path(e["tmp"]).exists() and final.exists():
                remove(final)  # new, without an old one to restore
    for e in entries:
        remove(Path(e["tmp"]))


# ------------------------------------------------------------------------- interrupted runs
def partial_path(out: str | Path) -> Path:
    """Where an interrupted run of ``out`` keeps its work (``train``'s checkpoints, ``classify``'s
    block store): hidden beside it, ``.OUT.partial``."""
    out = Path(out)
    return out.parent / f".{out.name}.partial"


class PartialRun:
    """The work of an interrupted run, kept beside its output (:func:`partial_path`), with a
    JSON record (``record``, a file in it) of the settings that work depends on. ``--resume``
    continues it only under the same settings; a run without ``--resume`` starts afresh. The one
    resume rule of ``landcover train`` and ``landcover classify``.

    Args:
        out: the output the run writes.
        record: the record's file name in the folder.
        needs: other files the folder must hold to be resumed (e.g. a checkpoint).
    """

    def __init__(self, out: str | Path, record: str, needs: Sequence[str] = (), *,
                 folder: str | Path | None = None):
        self.out = Path(out)
        self.path = Path(folder) if folder is not None else partial_path(self.out)
        self.record = self.path / record
        self.needs = tuple(needs)

    def exists(self) -> bool:
        return self.record.is_file() and all((self.path / n).is_file() for n in self.needs)

    def resume(self, expected: dict, *, nothing: str, other: str, hint: str | None = None
               ) -> dict:
        """The saved record, after checking that every key of ``expected`` has the same value
        in it.

        Raises:
            ResumeError: ``nothing`` where there is no interrupted run (or it lacks a needed
                file), the record is damaged, or ``other`` (with the keys that differ) where the
                run was made under other settings.
        """
        if not self.exists():
            raise ResumeError(nothing)
        try:
            saved = json.loads(self.record.read_text())
        except (OSError, ValueError):
            raise ResumeError(f"{self.record}: the interrupted run's record is damaged",
                              hint="run again without --resume (it then starts afresh)") from None
        if not isinstance(saved, dict):
            raise ResumeError(f"{self.record}: the interrupted run's record is damaged")
        differ = sorted(k for k, v in expected.items() if saved.get(k) != v)
        if differ:
            raise ResumeError(other.format(keys=", ".join(differ)), hint=hint)
        return saved

    def clear(self, why: str = "pass --resume to continue it") -> None:
        """Remove an earlier interrupted run's folder, saying so (warning level)."""
        if self.path.exists():
            log.warning("discarding the interrupted run in %s (%s)", self.path, why)
            remove(self.path)

    def start(self, why: str = "pass --resume to continue it") -> Path:
        """A fresh, empty folder (an earlier interrupted run's removed, see :meth:`clear`)."""
        self.clear(why)
        self.path.mkdir(parents=True)
        return self.path

    @contextmanager
    def kept_on_failure(self, state: dict, what: str) -> Iterator[None]:
        """Around the work: if it fails (or is interrupted) before ``state["epochs_done"]``
        counts a finished epoch, the folder is removed; after, it is kept for ``--resume``
        (a warning says where)."""
        try:
            yield
        except BaseException:
            if not state.get("epochs_done"):
                remove(self.path)
            else:
                log.warning("%s stopped after epoch %d; continue with --resume (checkpoint in "
                            "%s)", what, state["epochs_done"], self.path)
            raise

    def write(self, data: dict) -> None:
        """Write the record (atomically: a kill leaves the old one or the new one)."""
        tmp = self.record.with_name(f".{self.record.name}.{uuid.uuid4().hex[:8]}.tmp")
        tmp.write_text(json.dumps(data, indent=1, allow_nan=True))
        os.replace(tmp, self.record)

    def discard(self) -> None:
        remove(self.path)
