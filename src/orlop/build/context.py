"""The build context: the tar the client sends, unpacked without trusting it; the sources of
a COPY/ADD found in it as Docker's classic builder finds them; and a checksum of what they
hold, for the step cache.

    extract(stream, dest)
        Unpack the context (a tar, plain or gzip, bzip2, xz or zstd compressed) into `dest`
        (missing or empty). Refused with ContextError, leaving nothing behind: absolute names,
        `..` components, NUL bytes, an entry written through a symlink, hard links to what is
        not an earlier regular entry of the archive, device nodes and FIFOs, a truncated or
        corrupt archive. Symlinks are kept as they are, whatever their target (a context may
        hold `current -> /opt/app`): nothing here or in `resolve` ever follows one outside the
        context. `.wh.` names are ordinary files here (a context is not an image layer).
        Modes and times are those of the archive; files belong to the daemon's user.
    resolve(context_dir, path) -> host path
        `path` inside the context with every symlink followed as if the context were the root
        (Docker's FollowSymlinkInScope): never outside it. "forbidden path outside the build
        context" for a path that climbs out with `..`.
    copy_sources(context_dir, patterns, matcher=None, command="COPY") -> [(host path, name)]
        Each COPY/ADD source: a leading `/` or `./` dropped, Go filepath.Match wildcards (`*`
        and `?` never match `/`) matched against every path of the context, a symlink source
        followed inside the context; `name` is the path as found in the context (the name the
        copy gets). A source that is missing, or excluded by the matcher: Docker's "COPY failed:
        file not found in build context or excluded by .dockerignore: stat X: file does not
        exist"; wildcards that match nothing at all: "COPY failed: no source files were specified".
    checksum(context_dir, sources, matcher=None, owners=False) -> "sha256:<hex>"
        The cache key of a COPY/ADD's sources (items: a name in the context, a host path, or a
        (host path, name) pair from copy_sources): for every file and directory under each
        source, its path in the context, type, permission bits (with setuid/setgid/sticky),
        symlink target, security.capability xattr and content, in a fixed order. Like Docker's
        tarsum-based hash, modification times are left out (a fresh `git clone` still hits the
        cache), and ownership too unless `owners` (COPY --from without --chown keeps the owners,
        so there they count).
    remove_build_files(context_dir, matcher, dockerfile)
        What dockerd does once it has read the Dockerfile: delete `.dockerignore` and the
        Dockerfile from the context if .dockerignore excludes them (the client sent them anyway).
    prune(context_dir, matcher)
        Delete everything .dockerignore excludes (Matcher.excluded), for a context sent by a
        client that did not apply it; includes what remove_build_files deletes.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import lzma
import os
import shutil
import stat
import tarfile
import tempfile
import zlib

from orlop.build.ignore import BadPattern, go_clean, go_match

__all__ = ["ContextError", "extract", "resolve", "copy_sources", "checksum", "remove_build_files", "prune"]

MAX_SYMLINKS = 255
_CHUNK = 1 << 20


class ContextError(ValueError):
    pass


# --- unpacking ------------------------------------------------------------------------------

class _Prefixed(io.RawIOBase):
    """A stream with bytes already read put back in front."""

    def __init__(self, head: bytes, stream) -> None:
        self._head = head
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._stream.read(len(buffer))
        if not data:
            return 0
        buffer[:len(data)] = data
        return len(data)


def _tar_stream(stream):
    """A readable stream of the uncompressed tar (gzip, bzip2, xz and zstd are detected)."""
    head = b""
    while len(head) < 6:
        chunk = stream.read(6 - len(head))
        if not chunk:
            break
        head += chunk
    raw = io.BufferedReader(_Prefixed(head, stream), _CHUNK)
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True), head
    if head.startswith(b"\x1f\x8b"):
        import gzip

        return gzip.GzipFile(fileobj=raw, mode="rb"), head
    if head.startswith(b"BZh"):
        import bz2

        return bz2.BZ2File(raw, "rb"), head
    if head.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMAFile(raw, "rb"), head
    return raw, head


def extract(stream, dest: str) -> None:
    """Unpack the context tar read from `stream` into `dest` (see the module's docstring)."""
    dest = os.path.abspath(dest)
    if os.path.lexists(dest):
        if not os.path.isdir(dest) or os.path.islink(dest):
            raise ValueError(f"context destination {dest} is not a directory")
        if os.listdir(dest):
            raise ValueError(f"context destination {dest} is not empty")
    parent = os.path.dirname(dest)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(dest)}.partial-", dir=parent)
    try:
        try:
            source, head = _tar_stream(stream)
            if head:
                _Unpacker(tmp).run(source)
        except ContextError:
            raise
        except OSError as e:
            if e.errno is None:              # gzip, bzip2 data errors
                raise ContextError(f"the build context is not a valid archive: {e}") from None
            if e.errno in (errno.ENAMETOOLONG, errno.EILSEQ, errno.EINVAL):
                raise ContextError(f"the build context could not be unpacked: {e}") from None
            raise
        except (tarfile.TarError, EOFError, ValueError, zlib.error, lzma.LZMAError) as e:
            if str(e) == "empty file":
                raise ContextError("the build context is not a valid archive: no tar data could be read from "
                                   "it") from None
            raise ContextError(f"the build context is not a valid tar archive: {e}") from None
        except Exception as e:
            if type(e).__module__.startswith("zstandard"):
                raise ContextError(f"the build context is not valid zstd: {e}") from None
            raise
        mode = stat.S_IMODE(os.stat(dest).st_mode) if os.path.isdir(dest) else 0o700
        os.chmod(tmp, mode)
        if os.path.isdir(dest):
            os.rmdir(dest)
        os.rename(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


class _Unpacker:
    def __init__(self, root: str) -> None:
        self.root = root
        self.dirs: dict[str, tuple[int, float | None]] = {}   # relative path -> (mode, mtime), set at the end
        self.files: set[str] = set()                   # regular files of the archive (hard link targets)

    def run(self, source) -> None:
        with tarfile.open(fileobj=source, mode="r|") as tf:
            for member in tf:
                self._entry(tf, member)
        for rel in sorted(self.dirs, key=lambda r: r.count("/"), reverse=True):
            mode, mtime = self.dirs[rel]
            path = self._path(rel)
            os.chmod(path, mode)
            if mtime is not None:
                os.utime(path, (mtime, mtime), follow_symlinks=False)

    def _path(self, rel: str) -> str:
        return os.path.join(self.root, rel) if rel else self.root

    def _name(self, name: str, what: str = "entry") -> str:
        shown = name
        if "\0" in name:
            raise ContextError(f"build context: {what} {shown!r} has a NUL byte in its name")
        if name.startswith("/"):
            raise ContextError(f"build context: {what} {shown!r} has an absolute name")
        parts = [p for p in name.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise ContextError(f"build context: {what} {shown!r} has a '..' component (it would leave the context)")
        return "/".join(parts)

    def _parents(self, rel: str, entry: str) -> None:
        """Make the parent directories of `rel`, refusing to go through anything but real
        directories (a symlink made by an earlier entry is never followed)."""
        parts = rel.split("/")[:-1]
        for i in range(len(parts)):
            sub = "/".join(parts[:i + 1])
            path = self._path(sub)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                os.mkdir(path, 0o700)
                self.dirs.setdefault(sub, (0o755, None))
                continue
            if stat.S_ISLNK(st.st_mode):
                raise ContextError(f"build context: entry {entry!r} would be written through the symbolic "
                                   f"link {sub!r}")
            if not stat.S_ISDIR(st.st_mode):
                raise ContextError(f"build context: entry {entry!r}: {sub!r} is not a directory")

    def _clear(self, rel: str, keep_dir: bool) -> None:
        path = self._path(rel)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            if keep_dir:
                return
            shutil.rmtree(path)
            for key in [k for k in self.dirs if k == rel or k.startswith(rel + "/")]:
                del self.dirs[key]
            self.files = {f for f in self.files if not f.startswith(rel + "/")}
        else:
            os.unlink(path)
        self.files.discard(rel)

    def _entry(self, tf: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        entry = member.name
        rel = self._name(entry)
        if member.ischr() or member.isblk():
            raise ContextError(f"build context: entry {entry!r} is a device node, which a build context may not hold")
        if member.isfifo():
            raise ContextError(f"build context: entry {entry!r} is a FIFO, which a build context may not hold")
        if not rel:                          # "./": the context root itself
            return
        self._parents(rel, entry)
        path = self._path(rel)
        if member.isdir():
            self._clear(rel, keep_dir=True)
            if not os.path.isdir(path):
                os.mkdir(path, 0o700)
            self.dirs[rel] = (stat.S_IMODE(member.mode), member.mtime)
            return
        self._clear(rel, keep_dir=False)
        if member.issym():
            if "\0" in member.linkname:
                raise ContextError(f"build context: symbolic link {entry!r} has a NUL byte in its target")
            os.symlink(member.linkname, path)
            os.utime(path, (member.mtime, member.mtime), follow_symlinks=False)
        elif member.islnk():
            target = self._name(member.linkname, "hard link target")
            if target not in self.files:
                raise ContextError(f"build context: hard link {entry!r} points to {member.linkname!r}, which is "
                                   "not a file earlier in the archive")
            os.link(self._path(target), path, follow_symlinks=False)
            self.files.add(rel)
        else:                                # regular (and contiguous, unknown types: tarfile's rule)
            data = tf.extractfile(member)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                if data is not None:
                    with os.fdopen(fd, "wb", closefd=False) as out:
                        shutil.copyfileobj(data, out, _CHUNK)
                os.fchmod(fd, stat.S_IMODE(member.mode))
                os.utime(fd, (member.mtime, member.mtime))
            finally:
                os.close(fd)
            self.files.add(rel)


# --- paths in the context -------------------------------------------------------------------

def _clean_source(path: str) -> str:
    """A COPY source as the classic builder takes it: `/` and `./` prefixes dropped."""
    while path.startswith("/") and len(path) > 1:
        path = path[1:]
    if path == "/":
        return "."
    return path.removeprefix("./") or "."


def resolve(context_dir: str, path: str) -> str:
    """The host path of `path` in the context, symlinks followed but never out of it."""
    root = os.path.abspath(context_dir)
    cleaned = go_clean(path.lstrip("/")) if path.strip("/") else "."
    if cleaned == ".." or cleaned.startswith("../"):
        raise ContextError(f"forbidden path outside the build context: {path} ()")
    pending = [p for p in cleaned.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    links = 0
    while pending:
        part = pending.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        try:
            st = os.lstat(candidate)
        except (FileNotFoundError, NotADirectoryError):
            resolved.append(part)
            continue
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > MAX_SYMLINKS:
                raise ContextError(f"too many symbolic links resolving {path} in the build context")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            pending[:0] = [p for p in target.split("/") if p not in ("", ".")]
        else:
            resolved.append(part)
    return os.path.join(root, *resolved) if resolved else root


def _has_wildcards(path: str) -> bool:
    i = 0
    while i < len(path):
        ch = path[i]
        if ch == "\\":
            i += 2
            continue
        if ch in "*?[":
            return True
        i += 1
    return False


def _walk(root: str, rel: str = ""):
    """Every path under root, in Go's filepath.WalkDir order (lexical, depth first), not
    following symlinks."""
    try:
        names = sorted(os.listdir(os.path.join(root, rel) if rel else root))
    except (NotADirectoryError, FileNotFoundError, PermissionError):
        return
    for name in names:
        sub = f"{rel}/{name}" if rel else name
        yield sub
        if os.path.isdir(os.path.join(root, sub)) and not os.path.islink(os.path.join(root, sub)):
            yield from _walk(root, sub)


def copy_sources(context_dir: str, patterns: list[str], matcher=None, command: str = "COPY") -> list[tuple[str, str]]:
    root = os.path.abspath(context_dir)
    found: list[tuple[str, str]] = []
    for original in patterns:
        source = _clean_source(original)
        if _has_wildcards(source):
            try:
                go_match(source, ".")
            except BadPattern:
                raise ContextError(f"{command} failed: syntax error in pattern {original!r}") from None
            for rel in _walk(root):
                if go_match(source, rel) and not (matcher is not None and matcher.excluded(rel)):
                    host = resolve(root, rel)
                    if not os.path.exists(host):
                        raise ContextError(f"{command} failed: file not found in build context or excluded by "
                                           f".dockerignore: stat {rel}: file does not exist")
                    found.append((host, rel))
            continue
        try:
            host = resolve(root, source)
        except ContextError as e:
            raise ContextError(f"{command} failed: {e}") from None
        name = go_clean(source)
        excluded = matcher is not None and name != "." and matcher.excluded(name)
        if excluded or not os.path.exists(host):
            raise ContextError(f"{command} failed: file not found in build context or excluded by .dockerignore: "
                               f"stat {source}: file does not exist")
        found.append((host, name))
    if not found:
        raise ContextError(f"{command} failed: no source files were specified")
    return found


# --- the cache key --------------------------------------------------------------------------

def _entries(host: str, name: str):
    """(host path, name) of a source and, for a directory, of everything below it."""
    yield host, name
    if os.path.isdir(host) and not os.path.islink(host):
        for sub in _walk(host):
            yield os.path.join(host, sub), (sub if name == "." else f"{name}/{sub}")


def _file_digest(path: str) -> str:
    digest = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        with os.fdopen(fd, "rb", closefd=False) as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
    finally:
        os.close(fd)
    return digest.hexdigest()


def checksum(context_dir: str, sources, matcher=None, *, owners: bool = False) -> str:
    root = os.path.abspath(context_dir)
    digest = hashlib.sha256()
    for item in sources:
        if isinstance(item, tuple):
            host, name = item
        else:
            host = item if os.path.isabs(item) else resolve(root, item)
            rel = os.path.relpath(host, root)
            name = "." if rel == "." else rel.replace(os.sep, "/")
        digest.update(json.dumps(["source", name]).encode() + b"\n")
        for path, entry_name in _entries(host, name):
            if matcher is not None:
                rel = os.path.relpath(path, root)
                if not rel.startswith("..") and rel != "." and matcher.excluded(rel):
                    continue
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                raise ContextError(f"file not found in build context: {entry_name}") from None
            kind = stat.S_IFMT(st.st_mode)
            record: list = [entry_name, kind, stat.S_IMODE(st.st_mode)]
            if owners:
                record += [st.st_uid, st.st_gid]
            if stat.S_ISLNK(st.st_mode):
                record.append(os.readlink(path))
            elif stat.S_ISREG(st.st_mode):
                record.append(_file_digest(path))
                try:
                    record.append(os.getxattr(path, "security.capability", follow_symlinks=False).hex())
                except OSError:
                    pass
            digest.update(json.dumps(record).encode() + b"\n")
    return "sha256:" + digest.hexdigest()


def remove_build_files(context_dir: str, matcher, dockerfile: str = "Dockerfile") -> None:
    root = os.path.abspath(context_dir)
    for name in (".dockerignore", dockerfile):
        rel = go_clean(name.lstrip("/"))
        if rel.startswith("..") or rel == "." or not matcher.excluded(rel):
            continue
        parent = resolve(root, os.path.dirname(rel)) if "/" in rel else root
        path = os.path.join(parent, os.path.basename(rel))
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        elif os.path.lexists(path):
            os.unlink(path)


def prune(context_dir: str, matcher) -> None:
    """Delete from an unpacked context what `matcher` excludes, the Dockerfile and
    .dockerignore included. An excluded directory is kept only for what an exception
    re-includes below it."""
    root = os.path.abspath(context_dir)
    if not matcher:
        return

    def visit(rel: str) -> bool:            # True if the directory is left empty
        path = os.path.join(root, rel) if rel else root
        names = os.listdir(path)
        for name in names:
            sub = f"{rel}/{name}" if rel else name
            full = os.path.join(root, sub)
            is_dir = os.path.isdir(full) and not os.path.islink(full)
            if matcher.excluded(sub):
                if is_dir and matcher.exclusions:
                    if visit(sub):
                        os.rmdir(full)
                elif is_dir:
                    shutil.rmtree(full)
                else:
                    os.unlink(full)
            elif is_dir:
                visit(sub)
        return not os.listdir(path)

    visit("")
