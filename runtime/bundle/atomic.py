"""Crash-safe file writes and the inter-process edit lock, for bundles and any file beside them.

A write goes to a temporary file in the same folder, is fsynced, renamed over the target and the
folder fsynced: a writer killed half-way leaves the previous file untouched and a temporary file
that the next write to that path removes."""
from __future__ import annotations

import contextlib
import os
import re
import tempfile
from pathlib import Path


def _temp_pattern(path: Path) -> re.Pattern:
    return re.compile(rf"^\.{re.escape(path.name)}\.(\d+)\.[^.]+\.tmp$")


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def remove_stale_temps(path: str | Path) -> list[Path]:
    """Delete temporary files left beside ``path`` by writers that died (kill -9, power loss)."""
    path = Path(path)
    pattern, removed = _temp_pattern(path), []
    try:
        entries = list(path.parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        m = pattern.match(entry.name)
        if m and not _pid_alive(int(m.group(1))):
            try:
                entry.unlink()
                removed.append(entry)
            except OSError:
                pass
    return removed


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _target_mode(path: Path) -> int:
    try:
        return os.stat(path).st_mode & 0o777
    except FileNotFoundError:
        return 0o666 & ~_umask()


def _umask() -> int:
    """The process umask, read without changing it where the OS allows (setting it is process-wide)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


@contextlib.contextmanager
def edit_lock(path: str | Path):
    """Hold an exclusive inter-process lock for a read-check-write of the bundle at ``path``:
    ``fcntl.flock`` on a sidecar ``.<name>.lock`` file (the bundle itself is replaced on every
    write, so it cannot carry the lock). Blocks until the lock is free. Where ``fcntl`` does not
    exist (Windows) no lock is taken; the changed-on-disk check in ``Recognizer.save`` still holds."""
    path = Path(path)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_name(f".{path.name}.lock"), os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def atomic_write(path: str | Path, write) -> Path:
    """Call ``write(fileobj)`` on a temp file beside ``path``, fsync, rename over it, fsync the folder.
    A crash at any point leaves either the old file or the new one, never a mix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, _target_mode(path))  # mkstemp makes 0600; keep the old file's mode, else the umask's
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path
