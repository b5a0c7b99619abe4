"""`orlop cp`: files between a container and the host, with the docker CLI's rules
(cli/command/container/cp.go and moby's pkg/archive/copy.go) for what a copy means:

- into an existing directory, the source goes inside it under its own name;
- to a path that does not exist, the source (a file or a directory) takes that name, its
  parent must exist; a trailing `/` asserts a directory; `SRC/.` copies a directory's content;
- a directory never replaces a file; `-` reads or writes a tar stream;
- a symlink as the source is copied as a link, followed with -L (or a trailing `/`); a
  destination that is a symlink is followed.

The daemon answers with or receives a tar (GET/PUT /containers/{id}/archive); here its
entries are named for where they go, and written on the host with orlop's safe untar.
"""

from __future__ import annotations

import os
import posixpath
import sys

from orlop.cli.client import APIError
from orlop.cli.errors import CommandError
from orlop.cli.flags import Spec, command, flag

GO_DIR, GO_SYMLINK = 1 << 31, 1 << 27

CP_SPEC = Spec("cp", "orlop cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n\torlop cp [OPTIONS] SRC_PATH|- "
               "CONTAINER:DEST_PATH", "Copy files/folders between a container and the local filesystem\n\n"
               "Use '-' as the source to read a tar archive from stdin\nand extract it to a directory destination "
               "in a container.\nUse '-' as the destination to stream a tar archive of a\ncontainer source to "
               "stdout.", [
                   flag("-a, --archive", "bool", "Archive mode (copy all uid/gid information)"),
                   flag("-L, --follow-link", "bool", "Always follow symbol link in SRC_PATH"),
                   flag("-q, --quiet", "bool", "Suppress progress output during copy. Progress output is "
                        "automatically suppressed if no terminal is attached"),
               ], min_args=2, max_args=2, aliases="orlop container cp, orlop cp")


class CopyInfo:
    __slots__ = ("path", "exists", "is_dir", "rebase_name")

    def __init__(self, path: str, exists: bool = False, is_dir: bool = False, rebase_name: str = "") -> None:
        self.path, self.exists, self.is_dir, self.rebase_name = path, exists, is_dir, rebase_name


def split_cp_arg(arg: str) -> tuple[str, str]:
    """"container:path" or a local path (absolute, or starting with "." before a colon)."""
    if arg.startswith("/"):
        return "", arg
    container, colon, path = arg.partition(":")
    if not colon or container.startswith("."):
        return "", arg
    return container, path


def _specifies_current_dir(path: str) -> bool:
    return posixpath.basename(path) == "."


def _has_trailing_sep(path: str) -> bool:
    return path.endswith("/")


def split_dir_entry(path: str) -> tuple[str, str]:
    """moby's SplitPathDirEntry: the directory and the entry, "/." kept as the entry "."."""
    cleaned = posixpath.normpath(path)
    if _specifies_current_dir(path):
        cleaned += "/."
    return posixpath.dirname(cleaned) or ".", posixpath.basename(cleaned) or "/"


def rebase_name(path: str, resolved: str) -> tuple[str, str]:
    """moby's GetRebaseName: the resolved path with the asked-for trailing "/" or "/." kept,
    and the name the archive's top entry must take when resolving changed the last element."""
    if _specifies_current_dir(path) and not _specifies_current_dir(resolved):
        resolved += "/."
    if _has_trailing_sep(path) and not _has_trailing_sep(resolved):
        resolved += "/"
    rebase = posixpath.basename(path.rstrip("/")) if \
        posixpath.basename(path.rstrip("/")) != posixpath.basename(resolved.rstrip("/")) else ""
    return resolved, rebase


def resolve_local(path: str) -> str:
    """An absolute path, its trailing "/" or "/." kept."""
    absolute = os.path.abspath(path)
    if _specifies_current_dir(path):
        return absolute + "/."
    if _has_trailing_sep(path) and absolute != "/":
        return absolute + "/"
    return absolute


def source_info(path: str, follow_link: bool) -> CopyInfo:
    """moby's CopyInfoSourcePath on the host."""
    if follow_link:
        resolved, rebase = rebase_name(path, os.path.realpath(path))
    else:
        directory, base = posixpath.split(path)
        resolved = os.path.realpath(directory or ".").rstrip("/") + "/" + base
        rebase = base if _has_trailing_sep(path) and posixpath.basename(path.rstrip("/")) != \
            posixpath.basename(resolved.rstrip("/")) else ""
    try:
        st = os.lstat(resolved)
    except OSError as e:
        raise CommandError(f"lstat {resolved.rstrip('/') or '/'}: {_reason(e)}") from None
    import stat

    return CopyInfo(resolved, True, stat.S_ISDIR(st.st_mode), rebase)


def destination_info(path: str) -> CopyInfo:
    """moby's CopyInfoDestinationPath: symlinks at the end followed (10 at most); a missing
    destination needs an existing parent directory."""
    import stat

    original = path
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    hops = 0
    while st is not None and stat.S_ISLNK(st.st_mode):
        hops += 1
        if hops > 10:
            raise CommandError(f"too many symlinks in {original}")
        target = os.readlink(path)
        if not target.startswith("/"):
            target = posixpath.join(split_dir_entry(path)[0], target)
        path = target
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            st = None
    if st is not None:
        return CopyInfo(path, True, stat.S_ISDIR(st.st_mode))
    parent = split_dir_entry(path)[0]
    try:
        parent_st = os.stat(parent)
    except OSError as e:
        raise CommandError(f"stat {parent}: {_reason(e)}") from None
    if not stat.S_ISDIR(parent_st.st_mode):
        raise CommandError("not a directory")
    return CopyInfo(path)


def prepare(source: CopyInfo, destination: CopyInfo) -> tuple[str, str, str]:
    """moby's PrepareArchiveCopy: (directory to extract into, the source's top name in the
    archive, the name it must take there)."""
    dst_dir, dst_base = split_dir_entry(destination.path)
    src_base = source.rebase_name or split_dir_entry(source.path)[1]
    if destination.exists and destination.is_dir:
        return destination.path, src_base, src_base
    if destination.exists and source.is_dir:
        raise CommandError("cannot copy directory")
    if not destination.exists and not source.is_dir and _has_trailing_sep(destination.path):
        raise CommandError("no such directory")
    return dst_dir, src_base, dst_base


def _reason(error: OSError) -> str:
    return (error.strerror or str(error)).lower()


def _renamer(old: str, new: str):
    if old == new:
        return None
    if old == "/":  # the container's root: every entry goes under the new name
        return lambda name: new + ("/" + name.strip("/") if name.strip("/") else "")

    def rename(name: str) -> str:
        stripped = name[2:] if name.startswith("./") and old != "." else name
        if stripped == old or stripped.startswith(old + "/"):
            return new + stripped[len(old):]
        return name
    return rename


@command(CP_SPEC)
def cp(cli, opts, args):
    source, destination = args
    src_container, src_path = split_cp_arg(source)
    dst_container, dst_path = split_cp_arg(destination)
    if src_container and dst_container:
        raise CommandError("copying between containers is not supported")
    if not src_container and not dst_container:
        raise CommandError("must specify at least one container source")
    if (src_container and not src_path) or (dst_container and not dst_path):
        raise CommandError("filesystem path cannot be empty")
    if src_container:
        return _from_container(cli, src_container, src_path, destination, opts)
    return _to_container(cli, source, dst_container, dst_path, opts)


def _stat(cli, container: str, path: str) -> dict | None:
    """HEAD …/archive: the path's PathStat, or None (errors are not reported: the copy
    itself says what is wrong)."""
    import base64

    from orlop import fastjson

    try:
        response = cli.client.request("HEAD", f"/containers/{container}/archive", {"path": path})
    except APIError:
        return None
    response.close()
    header = response.headers.get("x-docker-container-path-stat")
    if not header:
        return None
    try:
        return fastjson.loads(base64.b64decode(header))
    except ValueError:
        return None


class _Chunks:
    """read(n) over a response's chunks (what tarfile's stream mode reads)."""

    def __init__(self, chunks) -> None:
        self.chunks, self.pending = iter(chunks), b""

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self.pending) < n:
            more = next(self.chunks, b"")
            if not more:
                break
            self.pending += more
        if n < 0:
            data, self.pending = self.pending, b""
        else:
            data, self.pending = self.pending[:n], self.pending[n:]
        return data


def _from_container(cli, container: str, src_path: str, destination: str, opts) -> int:
    from orlop import untar
    from orlop.cli.streams import write_all

    if destination != "-":
        destination = resolve_local(destination)
    rebase = ""
    if opts.follow_link:
        found = _stat(cli, container, src_path)
        if found and found.get("mode", 0) & GO_SYMLINK:
            target = found.get("linkTarget") or ""
            if not target.startswith("/"):
                target = posixpath.join(split_dir_entry(src_path)[0], target)
            src_path, rebase = rebase_name(src_path, target)
    response = cli.client.request("GET", f"/containers/{container}/archive", {"path": src_path})
    try:
        if destination == "-":
            sys.stdout.flush()
            for chunk in response.chunks():
                write_all(1, chunk)
            return 0
        found = _path_stat(response.headers)
        source = CopyInfo(src_path, True, bool(found.get("mode", 0) & GO_DIR), rebase)
        target = destination_info(destination)
        directory, old, new = prepare(source, target)
        if rebase:  # the archive's entries are named after what was asked, before -L resolved it
            old = split_dir_entry(src_path)[1]
        try:
            untar.untar(_Chunks(response.chunks()), directory, no_overwrite_dir_non_dir=True, no_lchown=True,
                        rename=_renamer(old, new))
        except untar.UntarError as e:
            raise CommandError(str(e)) from None
        except OSError as e:
            raise CommandError(f"{e.filename or directory}: {_reason(e)}") from None
    finally:
        response.close()
    return 0


def _path_stat(headers: dict) -> dict:
    import base64

    from orlop import fastjson

    try:
        return fastjson.loads(base64.b64decode(headers.get("x-docker-container-path-stat", "")))
    except ValueError:
        return {}


def _to_container(cli, source: str, container: str, dst_path: str, opts) -> int:
    target = CopyInfo(dst_path)
    found = _stat(cli, container, dst_path)
    if found and found.get("mode", 0) & GO_SYMLINK:
        link = found.get("linkTarget") or ""
        if not link.startswith("/"):
            link = posixpath.join(split_dir_entry(dst_path)[0], link)
        target.path = link
        found = _stat(cli, container, link)
    if found:
        target.exists, target.is_dir = True, bool(found.get("mode", 0) & GO_DIR)
    query = {"path": None, "noOverwriteDirNonDir": True, "copyUIDGID": opts.archive}
    headers = {"Content-Type": "application/x-tar"}
    if source == "-":
        if not target.is_dir:
            raise CommandError(f'destination "{container}:{dst_path}" must be a directory')
        query["path"] = target.path
        with os.fdopen(os.dup(0), "rb") as stdin:
            cli.client.request("PUT", f"/containers/{container}/archive", query, body=stdin, headers=headers).close()
        return 0
    info = source_info(resolve_local(source), opts.follow_link)
    directory, _, name = prepare(info, target)
    query["path"] = directory
    body, sent = _tar_stream(info.path, name)
    cli.client.request("PUT", f"/containers/{container}/archive", query, body=body, headers=headers).close()
    if not opts.quiet and os.isatty(2):
        from orlop.cli import units

        sys.stderr.write(f"Successfully copied {units.human_size(sent())} to {container}:{dst_path}\n")
    return 0


def _tar_stream(path: str, name: str):
    """A file reading the tar of `path` (top entry `name`) as a thread writes it, and a
    function giving the bytes sent."""
    import threading

    from orlop import tarwrite

    read_fd, write_fd = os.pipe()
    count = [0]
    failure: list[BaseException] = []

    class Counting:
        def __init__(self, f) -> None:
            self.f = f

        def write(self, data) -> int:
            count[0] += len(data)
            return self.f.write(data)

    def produce() -> None:
        try:
            with os.fdopen(write_fd, "wb") as out:
                with tarwrite.open_stream(Counting(out)) as tar:
                    tarwrite.write_tree(tar, path.rstrip("/") if path != "/" else path, name)
        except BrokenPipeError:
            pass
        except BaseException as e:
            failure.append(e)

    threading.Thread(target=produce, daemon=True).start()
    reader = os.fdopen(read_fd, "rb")

    class Body:
        def read(self, n: int) -> bytes:
            data = reader.read(n)
            if not data and failure:
                raise CommandError(f"archiving {path}: {failure[0]}")
            return data

    return Body(), lambda: count[0]
