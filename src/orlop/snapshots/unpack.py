"""Apply one image layer (a tar stream, gzip, zstd or plain) to an overlayfs upper directory.

The layer is streamed: bytes are decompressed, hashed (the diff ID is the sha256 of the
uncompressed tar) and written as they arrive; nothing is held in memory but one chunk.

OCI/AUFS whiteouts become overlayfs ones: `.wh.<name>` a 0:0 character device `<name>`,
`.wh..wh..opq` the xattr `trusted.overlay.opaque=y` on its directory.

A layer is untrusted input. Every entry's parent is opened component by component from
a descriptor of the layer's root with O_NOFOLLOW, and every file is created relative to
that descriptor, so no entry can write outside the layer, whatever symlinks earlier
entries made (symlinks are created as given, and never followed). Absolute names, `..`,
NUL bytes, over-long names, hard links leaving the layer and over-sized entries are
refused with `HostileLayer`. The layer is unpacked into a temporary directory beside
`dest` and renamed into place only when all of it applied, so a refused or broken layer
leaves nothing behind.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import os
import shutil
import stat
import tarfile
import tempfile
import urllib.parse
import zlib
from collections.abc import Iterator
from typing import BinaryIO, NamedTuple

from orlop.fsutil import fsync_dir

MAX_ENTRY_SIZE = 1 << 40          # 1 TiB: larger size headers are refused
MAX_NAME_BYTES = 4096             # PATH_MAX
WHITEOUT_PREFIX = ".wh."
OPAQUE_WHITEOUT = ".wh..wh..opq"
AUFS_META_PREFIX = ".wh..wh."     # .wh..wh.plnk, .wh..wh.aufs: AUFS bookkeeping, not image content
OPAQUE_XATTR = "trusted.overlay.opaque"
COMPRESSIONS = ("gzip", "zstd", "none")

_CHUNK = 1 << 20
_DIR_CACHE_MAX = 4096
_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_O_NEWFILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_XATTR_UNSUPPORTED = (errno.ENOTSUP, errno.EOPNOTSUPP)


class LayerError(ValueError):
    """The layer is not a well-formed tar stream (corrupt, truncated, wrong digest)."""


class HostileLayer(LayerError):
    """An entry of the layer would write outside it, or is built to exhaust the host."""


class LayerStats(NamedTuple):
    files: int      # tar entries applied (files, dirs, links, devices, whiteouts)
    bytes: int      # size of the uncompressed tar stream (what diff_id hashes)
    diff_id: str    # "sha256:<hex>" of the uncompressed tar stream


def unpack_layer(stream: BinaryIO, dest: str, *, compression: str | None = None,
                 max_size: int = MAX_ENTRY_SIZE, expected_diff_id: str | None = None,
                 sync: bool = True) -> LayerStats:
    """Unpack the layer read from `stream` into `dest`, which must be missing or empty.

    `compression` is "gzip", "zstd" or "none"; None detects it from the magic bytes.
    `expected_diff_id` (from the image config) is checked before the layer is put in
    place. `sync` flushes the filesystem (syncfs) before the rename, so a committed
    snapshot survives a power cut. Raises HostileLayer / LayerError (nothing is left
    behind) or OSError from the filesystem (likewise).
    """
    if compression is not None and compression not in COMPRESSIONS:
        raise ValueError(f"unknown layer compression {compression!r}: use one of {', '.join(COMPRESSIONS)} "
                         "or None to detect it")
    dest = os.path.abspath(dest)
    _check_dest(dest)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(dest)}.unpack-", dir=os.path.dirname(dest))
    try:
        os.chmod(tmp, 0o755)
        source = _TarBytes(stream, compression)
        with _Applier(tmp, max_size) as applier:
            files = applier.apply(source)
            source.drain()
            diff_id = source.digest()
            if expected_diff_id is not None and diff_id != expected_diff_id:
                raise LayerError(f"layer diff ID is {diff_id}, the image config expects {expected_diff_id}: "
                                 "the layer blob does not belong to this image")
            if sync:
                _syncfs(applier.root_fd)
        os.rename(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fsync_dir(os.path.dirname(dest))
    return LayerStats(files, source.size, diff_id)


def _check_dest(dest: str) -> None:
    try:
        st = os.lstat(dest)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        raise ValueError(f"layer destination {dest} exists and is not a directory")
    if os.listdir(dest):
        raise ValueError(f"layer destination {dest} is not empty: a layer is unpacked into an empty "
                         "directory (a new snapshot's upper dir)")


# --- the byte stream: detect, decompress, hash -------------------------------------------

class _TarBytes:
    """A read()-able view of the uncompressed tar stream, hashed as it passes."""

    def __init__(self, stream: BinaryIO, compression: str | None) -> None:
        head = b""
        while len(head) < 4:
            more = stream.read(4 - len(head))
            if not more:
                break
            head += more
        if compression is None:
            compression = _detect(head)
        raw = _Prefixed(head, stream)
        if compression == "gzip":
            self._chunks = _gunzip(raw)
        elif compression == "zstd":
            self._chunks = _unzstd(raw)
        else:
            self._chunks = iter(lambda: raw.read(_CHUNK), b"")
        self._hash = hashlib.sha256()
        self._pending = b""
        self._offset = 0
        self._base = 0          # stream offset of _pending[0]
        self.size = 0

    # tarfile reads headers through read()/tell()/seek() as from a file; the data of
    # regular files goes out through read_view() without being copied

    def _fill(self) -> bool:
        if self._offset < len(self._pending):
            return True
        self._base += len(self._pending)
        self._pending = next(self._chunks, b"")
        self._offset = 0
        self._hash.update(self._pending)
        self.size += len(self._pending)
        return bool(self._pending)

    def read_view(self, n: int) -> memoryview:
        """Up to n bytes from the current chunk, uncopied; empty at the end of the stream."""
        if not self._fill():
            return memoryview(b"")
        start = self._offset
        self._offset = min(start + n, len(self._pending))
        return memoryview(self._pending)[start:self._offset]

    def read(self, n: int = -1) -> bytes:
        if n < 0:
            n = 1 << 62
        if self._fill() and self._offset + n <= len(self._pending):
            start = self._offset
            self._offset += n
            return self._pending[start:self._offset]
        parts = []
        while n > 0 and (view := self.read_view(n)):
            parts.append(view)
            n -= len(view)
        return b"".join(parts)

    def tell(self) -> int:
        return self._base + self._offset

    def seek(self, pos: int, whence: int = 0) -> int:
        if whence != 0 or pos < self.tell():
            raise OSError(f"layer stream can only move forward (to {pos} from {self.tell()})")
        skip = pos - self.tell()
        while skip > 0 and (view := self.read_view(skip)):
            skip -= len(view)
        return self.tell()

    def drain(self) -> None:
        """Hash what follows the end-of-archive blocks (tar's record padding)."""
        self._base += len(self._pending)
        self._pending, self._offset = b"", 0
        for data in self._chunks:
            self._hash.update(data)
            self.size += len(data)

    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()


def _detect(head: bytes) -> str:
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return "zstd"
    if head.startswith((b"\xfd7zX", b"BZh")):
        raise LayerError("layer is xz or bzip2 compressed: only gzip, zstd and uncompressed layers are supported")
    return "none"


class _Prefixed:
    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        self._head = head
        self._stream = stream

    def read(self, n: int = -1) -> bytes:
        if self._head:
            data, self._head = self._head, b""
            return data
        return self._stream.read(n)


def _gunzip(raw: _Prefixed) -> Iterator[bytes]:
    """Decompress (multi-member) gzip with bounded output per step: a small compressed
    chunk can never expand into more than one chunk of memory."""
    d = None
    for data in iter(lambda: raw.read(_CHUNK), b""):
        while data:
            if d is None:                   # between members: gzip allows zero padding
                data = data.lstrip(b"\0")
                if not data:
                    break
                d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            try:
                out = d.decompress(data, _CHUNK)
            except zlib.error as e:
                raise LayerError(f"layer is not valid gzip: {e}") from None
            if out:
                yield out
            if d.eof:
                data, d = d.unused_data, None
            else:
                data = d.unconsumed_tail
    if d is not None:
        out = d.flush()
        if out:
            yield out
        if not d.eof:
            raise LayerError("gzip layer ends early: the blob is truncated")


def _unzstd(raw: _Prefixed) -> Iterator[bytes]:
    try:
        import zstandard
    except ImportError:
        raise LayerError("layer is zstd compressed and the `zstandard` package is not installed "
                         "(pip install zstandard)") from None
    reader = zstandard.ZstdDecompressor().stream_reader(raw, read_size=_CHUNK, read_across_frames=True,
                                                        closefd=False)
    try:
        while data := reader.read(_CHUNK):
            yield data
    except zstandard.ZstdError as e:
        raise LayerError(f"layer is not valid zstd: {e}") from None


# --- applying entries ---------------------------------------------------------------------

def _components(path: str, entry: str, what: str = "path") -> list[str]:
    """The components of a name inside the layer; refuses every name that could leave it."""
    if "\0" in path:
        raise HostileLayer(f"layer entry {entry!r}: NUL byte in its {what}")
    if len(os.fsencode(path)) > MAX_NAME_BYTES:
        raise HostileLayer(f"layer entry {entry[:64]!r}...: {what} longer than {MAX_NAME_BYTES} bytes")
    if path.startswith("/"):
        raise HostileLayer(f"layer entry {entry!r}: absolute {what} {path!r} (layer paths are relative)")
    parts = [p for p in path.split("/") if p and p != "."]
    if ".." in parts:
        raise HostileLayer(f"layer entry {entry!r}: {what} {path!r} has a '..' component")
    return parts


def _mtime_ns(ti: tarfile.TarInfo) -> int:
    text = ti.pax_headers.get("mtime")
    if text:                                # PAX: decimal seconds, kept to the nanosecond
        sign = -1 if text.startswith("-") else 1
        whole, _, frac = text.lstrip("+-").partition(".")
        try:
            return sign * (int(whole or "0") * 10**9 + int((frac + "000000000")[:9]))
        except ValueError:
            pass
    return int(ti.mtime * 10**9)


def _xattrs(ti: tarfile.TarInfo) -> Iterator[tuple[str, bytes]]:
    for key, value in ti.pax_headers.items():
        if key.startswith("SCHILY.xattr."):
            name, raw = key[13:], value.encode("utf-8", "surrogateescape")
        elif key.startswith("LIBARCHIVE.xattr."):
            name, raw = urllib.parse.unquote(key[17:]), base64.b64decode(value + "==")
        else:
            continue
        if name.startswith("trusted.overlay."):
            continue                        # overlayfs' own bookkeeping: only whiteouts may make it
        yield name, raw


class _Applier:
    def __init__(self, root: str, max_size: int) -> None:
        self.root = root
        self.root_fd = os.open(root, _O_DIR)
        self.max_size = max_size
        self.privileged = os.geteuid() == 0
        self._dirs: dict[str, int] = {}          # "a/b" -> open descriptor of that directory
        self._stale: list[int] = []
        self._dir_times: dict[str, int] = {}     # set last: creating children changes a dir's mtime

    def __enter__(self) -> _Applier:
        return self

    def __exit__(self, *exc: object) -> None:
        self._forget("")
        self._close_stale()
        os.close(self.root_fd)

    def apply(self, source: _TarBytes) -> int:
        try:
            # mode "r" over the forward-only stream: tarfile only seeks forward when reading
            # members in order, and this skips the copying of its "r|" stream buffer
            tf = tarfile.TarFile(fileobj=source, mode="r", encoding="utf-8", errors="surrogateescape")
        except tarfile.TarError as e:
            raise LayerError(f"layer is not a tar stream: {e}") from None
        count = 0
        while True:
            try:
                ti = tf.next()
            except tarfile.TarError as e:
                raise LayerError(f"layer tar stream is corrupt or truncated after {count} entries: {e}") from None
            if ti is None:
                break
            tf.members.clear()                   # streaming: keep no per-entry state
            count += 1
            try:
                self._entry(tf, ti)
            except tarfile.TarError as e:
                raise LayerError(f"layer entry {ti.name!r}: tar stream truncated or corrupt ({e})") from None
            except OSError as e:
                if e.filename is None:  # (os.write's ENOSPC): the entry that did not fit
                    raise OSError(e.errno, e.strerror, os.path.join(self.root, ti.name)) from None
                e.add_note(f"while unpacking layer entry {ti.name!r}")
                raise
            finally:
                self._close_stale()
        self._set_dir_times()
        return count

    # one entry

    def _entry(self, tf: tarfile.TarFile, ti: tarfile.TarInfo) -> None:
        entry = ti.name
        if ti.size > self.max_size or ti.size < 0:
            raise HostileLayer(f"layer entry {entry!r}: size {ti.size} exceeds the limit of {self.max_size} bytes")
        parts = _components(entry, entry)
        if any(p.startswith(AUFS_META_PREFIX) for p in parts[:-1]):
            return
        base = parts[-1] if parts else ""
        if base.startswith(WHITEOUT_PREFIX):
            if base == OPAQUE_WHITEOUT:
                os.setxattr(self._dir(parts[:-1], entry), OPAQUE_XATTR, b"y")
            elif not base.startswith(AUFS_META_PREFIX):
                hidden = base[len(WHITEOUT_PREFIX):]
                if hidden in ("", ".", ".."):
                    raise HostileLayer(f"layer entry {entry!r}: whiteout of {hidden!r}")
                self._whiteout(parts[:-1], hidden, entry)
            return
        if ti.isdir():
            self._mkdir(parts, ti)
            return
        if not parts:
            raise LayerError(f"layer entry {entry!r}: the layer's root must be a directory")
        pfd = self._dir(parts[:-1], entry)
        name = parts[-1]
        if ti.isreg():
            self._file(tf, ti, pfd, name)
        elif ti.issym():
            self._symlink(ti, pfd, name, parts)
        elif ti.islnk():
            self._hardlink(ti, pfd, name, parts)
        elif ti.ischr() or ti.isblk() or ti.isfifo():
            self._node(ti, pfd, name, parts)
        else:
            raise LayerError(f"layer entry {entry!r}: unsupported tar entry type {ti.type!r}")

    def _file(self, tf: tarfile.TarFile, ti: tarfile.TarInfo, pfd: int, name: str) -> None:
        try:
            fd = os.open(name, _O_NEWFILE, 0o600, dir_fd=pfd)
        except FileExistsError:
            self._remove(pfd, name, ti.name)
            fd = os.open(name, _O_NEWFILE, 0o600, dir_fd=pfd)
        try:
            if ti.issparse():
                _copy(tf.extractfile(ti), fd, ti.size)
                os.ftruncate(fd, ti.size)
            elif ti.size:
                source = tf.fileobj
                source.seek(ti.offset_data)
                size = ti.size
                while size > 0:
                    view = source.read_view(min(size, _CHUNK))
                    if not view:
                        raise LayerError("tar stream ends inside a file's data: the layer is truncated")
                    size -= len(view)
                    while view:
                        view = view[os.write(fd, view):]
            self._chown(ti, lambda: os.fchown(fd, ti.uid, ti.gid))
            os.fchmod(fd, ti.mode & 0o7777)
            for key, value in _xattrs(ti):
                _setxattr(fd, key, value, ti.name)
            ns = _mtime_ns(ti)
            os.utime(fd, ns=(ns, ns))
        finally:
            os.close(fd)

    def _mkdir(self, parts: list[str], ti: tarfile.TarInfo) -> None:
        if parts:
            pfd = self._dir(parts[:-1], ti.name)
            self._make_dir(pfd, parts[-1], "/".join(parts), ti.name)
        fd = self._dir(parts, ti.name)
        self._chown(ti, lambda: os.fchown(fd, ti.uid, ti.gid))
        os.fchmod(fd, ti.mode & 0o7777)
        for key, value in _xattrs(ti):
            _setxattr(fd, key, value, ti.name)
        self._dir_times["/".join(parts)] = _mtime_ns(ti)

    def _symlink(self, ti: tarfile.TarInfo, pfd: int, name: str, parts: list[str]) -> None:
        if "\0" in ti.linkname or len(os.fsencode(ti.linkname)) > MAX_NAME_BYTES:
            raise HostileLayer(f"layer entry {ti.name!r}: symlink target has a NUL byte or is longer "
                               f"than {MAX_NAME_BYTES} bytes")
        self._remove(pfd, name, ti.name, missing_ok=True)
        os.symlink(ti.linkname, name, dir_fd=pfd)
        self._finish_nondir(ti, pfd, name)

    def _hardlink(self, ti: tarfile.TarInfo, pfd: int, name: str, parts: list[str]) -> None:
        entry = ti.name
        target = _components(ti.linkname, entry, "hard link target")
        if not target:
            raise HostileLayer(f"layer entry {entry!r}: hard link to the layer's root")
        if target == parts:
            return
        tfd = self._dir(target[:-1], entry, create=False, what="hard link target")
        try:
            st = os.stat(target[-1], dir_fd=tfd, follow_symlinks=False)
        except FileNotFoundError:
            raise HostileLayer(f"layer entry {entry!r}: hard link target {ti.linkname!r} is not a file "
                               "of this layer") from None
        if stat.S_ISDIR(st.st_mode):
            raise HostileLayer(f"layer entry {entry!r}: hard link to the directory {ti.linkname!r}")
        self._remove(pfd, name, entry, missing_ok=True)
        os.link(target[-1], name, src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)

    def _node(self, ti: tarfile.TarInfo, pfd: int, name: str, parts: list[str]) -> None:
        kind = stat.S_IFCHR if ti.ischr() else stat.S_IFBLK if ti.isblk() else stat.S_IFIFO
        device = os.makedev(ti.devmajor, ti.devminor) if kind != stat.S_IFIFO else 0
        self._remove(pfd, name, ti.name, missing_ok=True)
        os.mknod(name, kind | 0o600, device, dir_fd=pfd)
        self._finish_nondir(ti, pfd, name)

    def _finish_nondir(self, ti: tarfile.TarInfo, pfd: int, name: str) -> None:
        """Owner, mode, xattrs and mtime of a symlink, device or fifo, never following it."""
        self._chown(ti, lambda: os.chown(name, ti.uid, ti.gid, dir_fd=pfd, follow_symlinks=False))
        link = f"/proc/self/fd/{pfd}/{name}"
        if not ti.issym():
            # chmod has no no-follow form: go through an O_PATH descriptor of the node itself
            fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
            try:
                os.chmod(f"/proc/self/fd/{fd}", ti.mode & 0o7777)
            finally:
                os.close(fd)
        for key, value in _xattrs(ti):
            _setxattr(link, key, value, ti.name, follow_symlinks=False)
        ns = _mtime_ns(ti)
        os.utime(name, ns=(ns, ns), dir_fd=pfd, follow_symlinks=False)

    def _whiteout(self, dparts: list[str], hidden: str, entry: str) -> None:
        pfd = self._dir(dparts, entry)
        try:
            st = os.stat(hidden, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            os.mknod(hidden, stat.S_IFCHR, 0, dir_fd=pfd)
            return
        # The name exists in this layer already: the whiteout applies to the lower layers only.
        # A file of this layer hides them by itself; a directory must become opaque.
        if stat.S_ISDIR(st.st_mode):
            os.setxattr(self._dir(dparts + [hidden], entry), OPAQUE_XATTR, b"y")

    def _chown(self, ti: tarfile.TarInfo, chown) -> None:
        try:
            chown()
        except PermissionError:
            if self.privileged:
                raise                           # unprivileged: files stay ours, as with tar

    # directories, resolved without following symlinks

    def _dir(self, parts: list[str], entry: str, *, create: bool = True, what: str = "path") -> int:
        """A descriptor of directory `parts` inside the layer, opened component by component
        with O_NOFOLLOW (missing ones are made 0755 when `create`)."""
        key = "/".join(parts)
        fd = self._dirs.get(key)
        if fd is not None:
            return fd
        if not parts:
            return self.root_fd
        if len(self._dirs) >= _DIR_CACHE_MAX:
            self._forget("")
        parent = self._dir(parts[:-1], entry, create=create, what=what)
        name = parts[-1]
        try:
            fd = os.open(name, _O_DIR, dir_fd=parent)
        except OSError as e:
            if e.errno == errno.ENOENT and create:
                self._make_dir(parent, name, key, entry)
                fd = os.open(name, _O_DIR, dir_fd=parent)
                os.fchmod(fd, 0o755)        # whatever the umask: as tar makes missing parents
            else:
                self._not_a_dir(e, parent, name, key, entry, what)
        self._dirs[key] = fd
        return fd

    def _make_dir(self, pfd: int, name: str, key: str, entry: str) -> None:
        try:
            os.mkdir(name, 0o755, dir_fd=pfd)
            return
        except FileExistsError:
            pass
        st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            return
        whiteout = stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
        self._remove(pfd, name, entry)
        os.mkdir(name, 0o755, dir_fd=pfd)
        if whiteout:
            # the layer deleted the lower directory, then made a new one: hide the old content
            fd = os.open(name, _O_DIR, dir_fd=pfd)
            try:
                os.setxattr(fd, OPAQUE_XATTR, b"y")
            finally:
                os.close(fd)

    def _not_a_dir(self, err: OSError, parent: int, name: str, key: str, entry: str, what: str):
        try:
            st = os.stat(name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            raise HostileLayer(f"layer entry {entry!r}: {what} directory {key!r} is not part of this layer") from None
        if stat.S_ISLNK(st.st_mode):
            raise HostileLayer(f"layer entry {entry!r}: {what} passes through the symlink {key!r} "
                               "(a layer may not write through symlinks)") from None
        if not stat.S_ISDIR(st.st_mode):
            raise LayerError(f"layer entry {entry!r}: {key!r} is not a directory") from None
        raise err

    def _remove(self, pfd: int, name: str, entry: str, *, missing_ok: bool = False) -> None:
        """Make room for a new entry: earlier entries of the same name are replaced."""
        try:
            os.unlink(name, dir_fd=pfd)
        except FileNotFoundError:
            if not missing_ok:
                raise
        except IsADirectoryError:
            key = self._key_of(pfd, name)
            if key is not None:
                self._forget(key)
            shutil.rmtree(name, dir_fd=pfd)

    def _key_of(self, pfd: int, name: str) -> str | None:
        if pfd == self.root_fd:
            return name
        for key, fd in self._dirs.items():
            if fd == pfd:
                return f"{key}/{name}"
        return None

    def _forget(self, key: str) -> None:
        """Drop cached descriptors of `key` and below (all of them for ""); they are closed
        after the current entry, which may still be using its parent's."""
        for k in [k for k in self._dirs if not key or k == key or k.startswith(key + "/")]:
            self._stale.append(self._dirs.pop(k))

    def _close_stale(self) -> None:
        while self._stale:
            os.close(self._stale.pop())

    def _set_dir_times(self) -> None:
        for key, ns in self._dir_times.items():
            try:
                fd = self._dir(key.split("/") if key else [], key, create=False)
            except (LayerError, OSError):
                continue                    # replaced by a later entry of the layer
            os.utime(fd, ns=(ns, ns))


def _copy(src, fd: int, size: int) -> None:
    while size > 0:
        data = src.read(min(size, _CHUNK))
        if not data:
            raise LayerError("tar stream ends inside a file's data: the layer is truncated")
        size -= len(data)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]


def _setxattr(target: int | str, key: str, value: bytes, entry: str, *, follow_symlinks: bool = True) -> None:
    try:
        os.setxattr(target, key, value, follow_symlinks=follow_symlinks)
    except OSError as e:
        if e.errno in _XATTR_UNSUPPORTED:
            return                          # e.g. security.selinux on a host without SELinux
        raise OSError(e.errno, f"setting xattr {key} on layer entry {entry!r}: {e.strerror}") from None


def _syncfs(fd: int) -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syncfs(fd) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"syncfs: {os.strerror(err)}")
