"""`docker cp` and `docker export` inside a container's filesystem view (containers/fsview.py):
what a path is (the X-Docker-Container-Path-Stat answer), a path as a tar, a tar extracted
into a directory, the whole root as a tar. These functions run in the view's thread, where
`/` is the container's root; they also work on any directory tree, which the unit tests use.

Paths are read as dockerd reads them: joined to `/` and cleaned lexically (`..` first, as
Go's filepath.Clean), a trailing `/` or `/.` kept (it makes the last symlink be followed);
the last element of a path to archive is not followed otherwise.
"""

from __future__ import annotations

import base64
import json
import os
import posixpath
import stat
import time

from orlop import tarwrite, untar
from orlop.errors import InvalidParameter

# Go's os.FileMode type bits (what the docker CLI reads in PathStat.mode)
GO_DIR, GO_SYMLINK, GO_DEVICE, GO_PIPE, GO_SOCKET = 1 << 31, 1 << 27, 1 << 26, 1 << 25, 1 << 24
GO_SETUID, GO_SETGID, GO_CHARDEV, GO_STICKY = 1 << 23, 1 << 22, 1 << 21, 1 << 20


def go_file_mode(st_mode: int) -> int:
    mode = st_mode & 0o777
    kind = stat.S_IFMT(st_mode)
    mode |= {stat.S_IFDIR: GO_DIR, stat.S_IFLNK: GO_SYMLINK, stat.S_IFBLK: GO_DEVICE,
             stat.S_IFCHR: GO_DEVICE | GO_CHARDEV, stat.S_IFIFO: GO_PIPE, stat.S_IFSOCK: GO_SOCKET}.get(kind, 0)
    if st_mode & stat.S_ISUID:
        mode |= GO_SETUID
    if st_mode & stat.S_ISGID:
        mode |= GO_SETGID
    if st_mode & stat.S_ISVTX:
        mode |= GO_STICKY
    return mode


def go_time(ns: int) -> str:
    """RFC 3339 with nanoseconds, trailing zeros dropped (Go's time.RFC3339Nano), in UTC."""
    seconds, frac = divmod(ns, 10**9)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    if frac:
        text += "." + f"{frac:09d}".rstrip("0")
    return text + "Z"


def go_base(path: str) -> str:
    """Go's filepath.Base: the last element, trailing slashes ignored; "/" for the root."""
    stripped = path.rstrip("/")
    if not stripped:
        return "/" if path else "."
    return stripped.rsplit("/", 1)[-1]


def container_path(path: str) -> str:
    """dockerd's absPath: joined to / and cleaned, a trailing "/" or "/." kept."""
    cleaned = posixpath.normpath("/" + path)
    if cleaned.startswith("//"):
        cleaned = "/" + cleaned.lstrip("/")
    if path == "." or path.endswith("/."):
        return cleaned.rstrip("/") + "/."
    if path.endswith("/") and cleaned != "/":
        return cleaned + "/"
    return cleaned


def stat_header(stat_info: dict) -> str:
    """The X-Docker-Container-Path-Stat header: base64 of the PathStat JSON."""
    return base64.b64encode(json.dumps(stat_info, separators=(",", ":")).encode()).decode()


# -- in the view -------------------------------------------------------------------------------

def path_stat(path: str) -> dict:
    """The PathStat of `path` (an absolute path as container_path gives it); a symlink's
    linkTarget is the path it finally leads to, as far as it exists. Raises FileNotFoundError."""
    st = os.lstat(path)
    target = ""
    if stat.S_ISLNK(st.st_mode):
        target = os.path.realpath(path)
    return {"name": go_base(path), "size": st.st_size, "mode": go_file_mode(st.st_mode),
            "mtime": go_time(st.st_mtime_ns), "linkTarget": target}


def write_path(path: str, out) -> None:
    """`path` as a tar whose top entry is named after the path's last element (what was asked
    for, even when a trailing slash made a symlink be followed)."""
    with tarwrite.open_stream(out) as tar:
        tarwrite.write_tree(tar, path, go_base(path))
    out.flush()


def write_root(out) -> None:
    """`docker export`: everything under `/`, names relative (bin/, bin/sh, …)."""
    hardlinks: dict = {}
    with tarwrite.open_stream(out) as tar:
        for name in sorted(os.listdir("/")):
            tarwrite.write_tree(tar, "/" + name, name, hardlinks)
    out.flush()


def extraction_dir(path: str) -> str:
    """Where PUT …/archive?path= extracts: the path with every symlink followed (the last
    one too), which must be a directory. Raises FileNotFoundError or InvalidParameter."""
    resolved = os.path.realpath(container_path(path), strict=True)
    if not stat.S_ISDIR(os.lstat(resolved).st_mode):
        raise InvalidParameter("extraction point is not a directory")
    return resolved


def extract(stream, directory: str, *, no_overwrite_dir_non_dir: bool, chown: tuple[int, int] | None) -> None:
    try:
        untar.untar(stream, directory, no_overwrite_dir_non_dir=no_overwrite_dir_non_dir, chown=chown,
                    follow_existing_links=True)  # this runs chrooted into the container
    except untar.UntarError as e:
        raise InvalidParameter(str(e)) from None


def user_ids(user: str) -> tuple[int, int]:
    """`docker cp -a`: the container's user (Config.User: name, uid, name:group, uid:gid)
    as numbers, from the container's /etc/passwd and /etc/group read as files (never NSS)."""
    name, _, group = (user or "root").partition(":")
    passwd = _colon_file("/etc/passwd")
    uid = gid = None
    for fields in passwd:
        if len(fields) >= 4 and (fields[0] == name or fields[2] == name):
            uid, gid = int(fields[2]), int(fields[3])
            break
    if uid is None:
        if not name.isdigit():
            raise InvalidParameter(f"unable to find user {name}: no matching entries in passwd file")
        uid, gid = int(name), 0
    if group:
        for fields in _colon_file("/etc/group"):
            if len(fields) >= 3 and (fields[0] == group or fields[2] == group):
                return uid, int(fields[2])
        if not group.isdigit():
            raise InvalidParameter(f"unable to find group {group}: no matching entries in group file")
        gid = int(group)
    return uid, gid if gid is not None else 0


def _colon_file(path: str) -> list[list[str]]:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return []
    with os.fdopen(fd, "rb") as f:
        data = f.read(1 << 20)
    return [line.split(":") for line in data.decode("utf-8", "replace").splitlines()
            if line and not line.startswith("#")]
