"""Crash-safe file writes, shared by every store (runtime state, content, snapshots,
image names). Only `os`: this is on the runtime's start-up path."""

from __future__ import annotations

import os


def write_atomic(path: str, data: bytes, mode: int = 0o600) -> None:
    """Replace `path` with `data` so that a crash leaves the old file or the new one, never
    a mix: write a temporary file beside it, fsync, rename over."""
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        write_all(fd, data, path)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    os.close(fd)
    os.rename(tmp, path)


def write_all(fd: int, data: bytes | memoryview, path: str) -> None:
    """All of `data` to `fd`. A write on a filling disk may be short (it writes what fits and
    says so): the rest is written again, and fails with ENOSPC. Errors name `path`."""
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view):]
    except OSError as e:
        raise OSError(e.errno, e.strerror, path) from None


def fsync_dir(path: str) -> None:
    """Make a rename or create in `path` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def tree_size(root: str) -> int:
    """Apparent size of the files under `root` (hard links counted once), as Docker's
    SizeRw: what a container's writable layer holds."""
    total = 0
    seen: set[tuple[int, int]] = set()
    for directory, _, files in os.walk(root):
        for name in files:
            try:
                st = os.lstat(os.path.join(directory, name))
            except OSError:
                continue
            if st.st_nlink > 1:
                if (st.st_dev, st.st_ino) in seen:
                    continue
                seen.add((st.st_dev, st.st_ino))
            total += st.st_size
    return total
