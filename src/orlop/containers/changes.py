"""`docker diff`: what a container changed in its root filesystem, from its overlay upper
directory against the image's layers (moby's pkg/archive OverlayChanges): Kind 0 modified,
1 added, 2 deleted.

An entry of the upper directory is added if no lower layer shows that path, modified if
one does; a whiteout (a 0:0 character device) is a deletion, and so is an opaque directory
that hid a directory of the image (its new content then shows as added). The lower layers
are read as overlayfs stacks them: the first one (top) that has a name decides, a whiteout
or an opaque directory in it hides the layers below.

The paths orlop mounts over (the /etc files, /proc, /sys, /dev: what dockerd keeps in its
"-init" layer) are left out, so is a directory that only holds them; a directory is
reported as modified when its owner or mode changed or something below it is reported
(not for its mtime alone, as `ChangesDirs` decides).
"""

from __future__ import annotations

import os
import stat

MODIFIED, ADDED, DELETED = 0, 1, 2
KIND_LETTERS = {MODIFIED: "C", ADDED: "A", DELETED: "D"}
OPAQUE_XATTR = "trusted.overlay.opaque"

# Mount points of every container (dockerd's init layer): not changes made by the container.
INIT_PATHS = frozenset({"/.dockerenv", "/etc/hosts", "/etc/hostname", "/etc/resolv.conf", "/etc/mtab",
                        "/dev", "/proc", "/sys"})


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _opaque(path: str) -> bool:
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def lower_lstat(lowers: list[str], rel: str) -> os.stat_result | None:
    """What the stack of `lowers` (top first) shows at `rel` ("a/b"), or None."""
    parts = rel.split("/")
    for layer in lowers:
        hidden_below = False
        path = layer
        for i, part in enumerate(parts):
            path = os.path.join(path, part)
            try:
                st = os.lstat(path)
            except (FileNotFoundError, NotADirectoryError):
                break               # not in this layer: look below
            if _is_whiteout(st):
                return None         # deleted by this layer
            if i == len(parts) - 1:
                return st
            if not stat.S_ISDIR(st.st_mode):
                return None         # a file of this layer hides the directory below
            if _opaque(path):
                hidden_below = True
        if hidden_below:
            return None             # an opaque parent in this layer hides the layers below
    return None


def changes(upper: str, lowers: list[str], exclude: frozenset[str] = INIT_PATHS) -> list[dict]:
    """[{"Path": "/etc", "Kind": 0}, …], parents before their children, names sorted."""
    out: list[dict] = []
    _walk(upper, "", lowers, exclude, out)
    return out


def _walk(upper: str, rel_dir: str, lowers: list[str], exclude: frozenset[str], out: list[dict]) -> None:
    directory = os.path.join(upper, rel_dir) if rel_dir else upper
    try:
        names = sorted(os.listdir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return
    for name in names:
        rel = f"{rel_dir}/{name}" if rel_dir else name
        path = "/" + rel
        if path in exclude:
            continue
        host = os.path.join(upper, rel)
        try:
            st = os.lstat(host)
        except FileNotFoundError:
            continue
        if _is_whiteout(st):
            out.append({"Path": path, "Kind": DELETED})
            continue
        lower = lower_lstat(lowers, rel)
        is_dir = stat.S_ISDIR(st.st_mode)
        if is_dir and lower is not None and _opaque(host):
            out.append({"Path": path, "Kind": DELETED})     # the image's directory was replaced
            _walk_added(upper, rel, exclude, out)
            continue
        if lower is None:
            out.append({"Path": path, "Kind": ADDED})
            if is_dir:
                _walk_added(upper, rel, exclude, out)
            continue
        if not is_dir or not stat.S_ISDIR(lower.st_mode):
            out.append({"Path": path, "Kind": MODIFIED})
            if is_dir:
                _walk_added(upper, rel, exclude, out)
            continue
        # A directory of the image: modified if its own metadata changed or for what is below.
        here = len(out)
        _walk(upper, rel, lowers, exclude, out)
        if len(out) > here or _metadata_differs(st, lower):
            out.insert(here, {"Path": path, "Kind": MODIFIED})


def _walk_added(upper: str, rel_dir: str, exclude: frozenset[str], out: list[dict]) -> None:
    """Everything below a directory the image did not have (or had and was replaced)."""
    try:
        names = sorted(os.listdir(os.path.join(upper, rel_dir)))
    except (FileNotFoundError, NotADirectoryError):
        return
    for name in names:
        rel = f"{rel_dir}/{name}"
        if "/" + rel in exclude:
            continue
        try:
            st = os.lstat(os.path.join(upper, rel))
        except FileNotFoundError:
            continue
        if _is_whiteout(st):
            continue
        out.append({"Path": "/" + rel, "Kind": ADDED})
        if stat.S_ISDIR(st.st_mode):
            _walk_added(upper, rel, exclude, out)


def _metadata_differs(a: os.stat_result, b: os.stat_result) -> bool:
    return a.st_mode != b.st_mode or a.st_uid != b.st_uid or a.st_gid != b.st_gid
