"""What each image layer adds: files added, changed (present below it) and deleted
(whiteouts), read from its unpacked snapshot directory or, when it was never unpacked,
from the layer tar's headers (no file content is read either way).

An entry is (path, kind): kind "dir", "file" (anything but a directory), "whiteout" (the
path is deleted) or "opaque" (a directory whose lower content is hidden).
"""

from __future__ import annotations

import os
import stat
import tarfile
from collections.abc import Iterable, Iterator

OPAQUE_XATTR = "trusted.overlay.opaque"
WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"


def entries_from_dir(root: str) -> Iterator[tuple[str, str]]:
    """An overlay layer directory: whiteouts are 0:0 character devices, opaque directories
    carry trusted.overlay.opaque=y."""
    stack = [""]
    while stack:
        relative = stack.pop()
        with os.scandir(os.path.join(root, relative) if relative else root) as it:
            for entry in it:
                path = f"{relative}/{entry.name}" if relative else entry.name
                st = entry.stat(follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    try:
                        opaque = os.getxattr(entry.path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
                    except OSError:
                        opaque = False
                    yield path, "opaque" if opaque else "dir"
                    stack.append(path)
                elif stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                    yield path, "whiteout"
                else:
                    yield path, "file"


def entries_from_tar(fileobj) -> Iterator[tuple[str, str]]:
    """A layer tar (gzip, bzip2 or xz compressed or not), AUFS-style whiteouts."""
    with tarfile.open(fileobj=fileobj, mode="r|*") as tf:
        for member in tf:
            path = member.name.lstrip("/")
            while path.startswith("./"):
                path = path[2:]
            path = path.rstrip("/")
            if not path or path == ".":
                continue
            directory, _, name = path.rpartition("/")
            if name == OPAQUE_MARKER:
                yield directory, "opaque"
            elif name.startswith(WHITEOUT_PREFIX):
                hidden = name[len(WHITEOUT_PREFIX):]
                yield (f"{directory}/{hidden}" if directory else hidden), "whiteout"
            else:
                yield path, "dir" if member.isdir() else "file"


def _hide_below(present: set[str], path: str, including_self: bool) -> None:
    prefix = path + "/"
    doomed = [p for p in present if p.startswith(prefix) or (including_self and p == path)]
    present.difference_update(doomed)


def count_changes(layers: Iterable[Iterable[tuple[str, str]]]) -> list[dict[str, int]]:
    """For each layer, bottom first: {added, changed, deleted}. A directory counts as added
    when nothing below had it; one that is only a parent of changes is not counted."""
    present: set[str] = set()
    out = []
    for entries in layers:
        added = changed = deleted = 0
        new_paths: list[str] = []
        for path, kind in entries:
            if kind == "whiteout":
                deleted += 1
                _hide_below(present, path, True)
                continue
            if kind == "opaque":
                _hide_below(present, path, False)
            if path in present:
                if kind != "dir":  # a file replaced, or a directory emptied of what was below (opaque)
                    changed += 1
            else:
                added += 1
            new_paths.append(path)
        present.update(new_paths)
        out.append({"added": added, "changed": changed, "deleted": deleted})
    return out
