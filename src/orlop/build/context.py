"""The build context: the tar the client sends, unpacked safely (through the same checks
as an image layer: no `..`, no absolute names, no link leading out), the sources of a
COPY/ADD matched against it, and a checksum of what they hold for the step cache."""

from __future__ import annotations

import fnmatch
import hashlib
import os
import posixpath
import stat

from orlop.snapshots.unpack import LayerError, unpack_layer


class ContextError(ValueError):
    pass


def extract(stream, dest: str) -> None:
    """Unpack the (plain, gzip or zstd) context tar into `dest`; a hostile one is refused."""
    target = os.path.join(dest, "ctx")
    try:
        unpack_layer(stream, target, sync=False)
    except LayerError as e:
        raise ContextError(f"the build context is not a usable tar archive: {e}") from None
    for name in os.listdir(target):
        os.rename(os.path.join(target, name), os.path.join(dest, name))
    os.rmdir(target)


def copy_sources(root: str, patterns: list[str], matcher=None) -> list[tuple[str, str]]:
    """(host path, name in the context) of each COPY/ADD source, wildcards expanded (Go's
    filepath.Match), refusing what leaves the context or is excluded by .dockerignore."""
    found: list[tuple[str, str]] = []
    for pattern in patterns:
        clean = posixpath.normpath("/" + pattern).lstrip("/") or "."
        if clean.startswith(".."):
            raise ContextError(f"forbidden path outside the build context: {pattern}")
        if any(c in clean for c in "*?["):
            matches = _glob(root, clean, matcher)
        else:
            path = os.path.join(root, clean) if clean != "." else root
            matches = [(path, clean)] if os.path.lexists(path) and not (
                matcher and clean != "." and matcher.excluded(clean)) else []
        if not matches:
            raise ContextError(f"COPY failed: file not found in build context or excluded by .dockerignore: "
                               f"stat {pattern}: file does not exist")
        found += matches
    return found


def _glob(root: str, pattern: str, matcher) -> list[tuple[str, str]]:
    out = []
    depth = pattern.count("/")
    for directory, dirs, files in os.walk(root):
        rel_dir = os.path.relpath(directory, root)
        level = 0 if rel_dir == "." else rel_dir.count("/") + 1
        if level > depth:
            dirs.clear()
            continue
        for name in sorted(dirs + files):
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            if rel.count("/") == depth and fnmatch.fnmatchcase(rel, pattern) and not (matcher and matcher.excluded(rel)):
                out.append((os.path.join(root, rel), rel))
    return sorted(out, key=lambda item: item[1])


def checksum(root: str, paths: list[str], matcher=None) -> str:
    """sha256 over each source's files: names relative to the source, type, mode bits,
    content and link targets (ownership is the step's --chown, not the context's)."""
    digest = hashlib.sha256()
    for path in paths:
        entries = [path]
        if os.path.isdir(path) and not os.path.islink(path):
            entries = []
            for directory, dirs, files in os.walk(path):
                dirs.sort()
                entries += [os.path.join(directory, n) for n in sorted(dirs + files)]
        for entry in entries:
            rel = os.path.relpath(entry, root)
            if matcher and matcher.excluded(rel):
                continue
            st = os.lstat(entry)
            digest.update(f"{os.path.relpath(entry, path)}\0{stat.S_IFMT(st.st_mode)}\0{stat.S_IMODE(st.st_mode)}\0"
                          .encode())
            if stat.S_ISLNK(st.st_mode):
                digest.update(os.readlink(entry).encode())
            elif stat.S_ISREG(st.st_mode):
                with open(entry, "rb") as f:
                    while chunk := f.read(1 << 20):
                        digest.update(chunk)
            digest.update(b"\0")
    return "sha256:" + digest.hexdigest()
