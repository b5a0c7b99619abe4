"""Tar streams written from directories: a tree as `docker cp` and `docker export` send it,
and an overlay upper directory as an image layer (overlayfs' deletions turned back into
the tar format's whiteouts: a 0:0 character device → `.wh.<name>`, an opaque directory →
`<dir>/.wh..wh..opq`).

The entries are made from lstat(2) alone — no user or group name is looked up, since a
lookup goes through NSS, which reads the container's files (and loads its libraries) when
this runs chrooted in a container. Files are opened with O_NOFOLLOW; a file that changes
size while it is read (a running container) is cut or zero-padded to the size in its
header, so the stream stays well-formed; entries that vanish meanwhile are left out.
Only the standard library, nothing imported lazily: the daemon runs this chrooted in a
container (containers/fsview.py), the CLI for `orlop cp` into one.
"""

from __future__ import annotations

import os
import stat
import tarfile

OPAQUE_XATTR = "trusted.overlay.opaque"
CAPABILITY_XATTR = "security.capability"
_CHUNK = 1 << 20
_TYPES = {stat.S_IFDIR: tarfile.DIRTYPE, stat.S_IFLNK: tarfile.SYMTYPE, stat.S_IFCHR: tarfile.CHRTYPE,
          stat.S_IFBLK: tarfile.BLKTYPE, stat.S_IFIFO: tarfile.FIFOTYPE, stat.S_IFREG: tarfile.REGTYPE}


def open_stream(out) -> tarfile.TarFile:
    return tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT, encoding="utf-8",
                        errors="surrogateescape")


def entry_info(path: str, st: os.stat_result, arcname: str, hardlinks: dict | None = None) -> tarfile.TarInfo | None:
    """What tarfile's gettarinfo makes of `path` (the same fields, so the same bytes), without
    the name lookups; a second name of a hard-linked file becomes a link to the first one
    recorded in `hardlinks`. None for a socket (tar has no such entry)."""
    kind = _TYPES.get(stat.S_IFMT(st.st_mode))
    if kind is None:
        return None
    info = tarfile.TarInfo(arcname)
    if kind == tarfile.REGTYPE and hardlinks is not None and st.st_nlink > 1:
        key = (st.st_ino, st.st_dev)
        if key in hardlinks and hardlinks[key] != arcname:
            info.type, info.linkname = tarfile.LNKTYPE, hardlinks[key]
        else:
            hardlinks[key] = arcname
            info.type = kind
    else:
        info.type = kind
    if kind == tarfile.SYMTYPE:
        info.linkname = os.readlink(path)
    info.mode = st.st_mode
    info.uid, info.gid = st.st_uid, st.st_gid
    info.size = st.st_size if info.type == tarfile.REGTYPE else 0
    info.mtime = st.st_mtime
    info.uname = info.gname = ""
    if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    return info


def add(tar: tarfile.TarFile, path: str, info: tarfile.TarInfo) -> None:
    """Write `info` and, for a regular file, the data of `path` (exactly info.size bytes)."""
    if info.type != tarfile.REGTYPE:
        tar.addfile(info)
        return
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as f:
        tar.addfile(info, _Exactly(f, info.size))


class _Exactly:
    """read() of a file as if it had `size` bytes: cut when it grew, zero-padded when it shrank."""

    def __init__(self, f, size: int) -> None:
        self.f, self.left = f, size

    def read(self, n: int = -1) -> bytes:
        n = self.left if n is None or n < 0 else min(n, self.left)
        data = self.f.read(n) if n else b""
        if len(data) < n:
            data += bytes(n - len(data))
        self.left -= len(data)
        return data


def write_tree(tar: tarfile.TarFile, path: str, arcname: str, hardlinks: dict | None = None) -> None:
    """`path` (not followed if a symlink) under the name `arcname`, and for a directory all
    below it, sorted; the file capabilities xattr kept, as Docker's archives keep it."""
    hardlinks = {} if hardlinks is None else hardlinks
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    _tree_entry(tar, path, arcname, st, hardlinks)


def _tree_entry(tar: tarfile.TarFile, path: str, arcname: str, st: os.stat_result, hardlinks: dict) -> None:
    try:
        info = entry_info(path, st, arcname, hardlinks)
        if info is None:
            return
        capability = _capability(path, st)
        if capability is not None:
            info.pax_headers = {"SCHILY.xattr." + CAPABILITY_XATTR: capability}
        add(tar, path, info)
    except FileNotFoundError:       # gone meanwhile (a running container)
        return
    if info.type != tarfile.DIRTYPE:
        return
    try:
        with os.scandir(path) as it:
            children = sorted((e.name, e) for e in it)
    except (FileNotFoundError, NotADirectoryError):
        return
    for name, entry in children:
        try:
            child_st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        _tree_entry(tar, os.path.join(path, name), f"{arcname.rstrip('/')}/{name}", child_st, hardlinks)


def _capability(path: str, st: os.stat_result) -> str | None:
    if not stat.S_ISREG(st.st_mode):
        return None
    try:
        value = os.getxattr(path, CAPABILITY_XATTR, follow_symlinks=False)
    except OSError:
        return None
    return value.decode("utf-8", "surrogateescape")


# --- an overlay upper directory as a layer ------------------------------------------------

def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _layer_xattrs(path: str) -> dict[str, str]:
    out = {}
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return out
    for name in names:
        if name.startswith("trusted.overlay."):
            continue
        try:
            out["SCHILY.xattr." + name] = os.getxattr(path, name, follow_symlinks=False).decode("utf-8",
                                                                                          "surrogateescape")
        except OSError:
            continue
    return out


def _opaque(path: str) -> bool:
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def write_layer(upper: str, out, exclude: frozenset[str] = frozenset()) -> int:
    """The upper directory's changes as a layer tar written to the binary file `out`
    (deterministic: sorted names, the files' own metadata); `exclude` names relative
    paths left out with all below them. Returns the number of entries written."""
    count = 0
    hardlinks: dict = {}
    with open_stream(out) as tar:
        for directory, dirs, files in os.walk(upper):
            dirs.sort()
            rel_dir = os.path.relpath(directory, upper)
            if rel_dir != "." and _opaque(directory):
                _add_marker(tar, os.path.join(rel_dir, ".wh..wh..opq"), os.lstat(directory))
                count += 1
            for name in sorted(dirs + files):
                path = os.path.join(directory, name)
                rel = os.path.normpath(os.path.join(rel_dir, name))
                if rel in exclude:
                    if name in dirs:
                        dirs.remove(name)
                    continue
                try:
                    st = os.lstat(path)
                except FileNotFoundError:
                    continue
                if _is_whiteout(st):
                    _add_marker(tar, os.path.join(os.path.dirname(rel), ".wh." + name), st)
                    count += 1
                    continue
                info = entry_info(path, st, rel, hardlinks)
                if info is None:
                    continue
                info.pax_headers = _layer_xattrs(path)
                try:
                    add(tar, path, info)
                except FileNotFoundError:
                    continue
                count += 1
    return count


def _add_marker(tar: tarfile.TarFile, name: str, st: os.stat_result) -> None:
    info = tarfile.TarInfo(os.path.normpath(name))
    info.mtime = int(st.st_mtime)
    info.mode = 0o644
    tar.addfile(info)
