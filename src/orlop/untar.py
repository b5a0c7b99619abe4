"""Extract a tar stream into an existing directory, as Docker's `archive.Untar` does for
`docker cp` (the daemon's side into a container, the CLI's side onto the host): entries
merged into what is there (a directory over a directory keeps it, anything else replaces
it, or is refused with `no_overwrite_dir_non_dir`), missing parents made 0755, owners
from the archive (or `chown`, or left alone with `no_lchown`), modes, times and xattrs
kept, directory times set last.

The archive is untrusted. Names are cleaned as Go's filepath.Clean does and one leaving
`dest` is refused; every parent is opened component by component from a descriptor of
`dest` with O_NOFOLLOW, so no entry is written through a symlink, whether the archive
made it or it was there before; hard links must point inside `dest`; a symlink whose
target, joined to its directory, leaves `dest` is refused (Docker's breakout check).

Only the standard library, and nothing imported lazily: the daemon runs this in a thread
chrooted into a container, where an import would look for modules in the container.
"""

from __future__ import annotations

import bz2  # noqa: F401  (tarfile's "r|*" imports these when it meets a compressed stream)
import contextlib
import errno
import lzma  # noqa: F401
import os
import posixpath
import stat
import tarfile
import zlib  # noqa: F401
from typing import BinaryIO

_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_CHUNK = 1 << 20


class UntarError(ValueError):
    """The archive cannot be extracted here (breakout, conflicting types, corrupt tar)."""


def clean_name(name: str) -> str:
    """Go's filepath.Clean of a tar entry name, without its leading slash ("" for the root)."""
    cleaned = posixpath.normpath("/" + name).lstrip("/")
    return "" if cleaned == "." else cleaned


def untar(stream: BinaryIO, dest: str, *, no_overwrite_dir_non_dir: bool = False,
          chown: tuple[int, int] | None = None, no_lchown: bool = False, rename=None,
          follow_existing_links: bool = False) -> int:
    """Extract the tar read from `stream` (plain, gzip, bzip2 or xz) into directory `dest`;
    returns the number of entries. `rename(name)` renames entries (and hard link targets)
    first, as the docker CLI rebases an archive. `follow_existing_links`: a symlink that was
    there before (a container's /var/run -> /run) is followed to the directory it names, as
    Docker does; only for a caller chrooted into that tree, where no link can lead out of it.
    Raises UntarError or OSError."""
    try:
        tf = tarfile.open(fileobj=stream, mode="r|*", encoding="utf-8", errors="surrogateescape")
    except tarfile.TarError as e:
        raise UntarError(f"the archive is not a tar stream: {e}") from None
    with _Extractor(dest, no_overwrite_dir_non_dir, chown, None if no_lchown else True,
                    follow_existing_links) as extractor:
        count = 0
        while True:
            try:
                ti = tf.next()
            except tarfile.TarError as e:
                raise UntarError(f"the archive is corrupt or truncated after {count} entries: {e}") from None
            if ti is None:
                break
            tf.members.clear()
            count += 1
            if rename is not None:
                ti.name = rename(ti.name)
                if ti.islnk():
                    ti.linkname = rename(ti.linkname)
            extractor.entry(tf, ti)
        extractor.finish()
    return count


class _Extractor:
    def __init__(self, dest: str, no_overwrite: bool, chown: tuple[int, int] | None, lchown: bool | None,
                 follow_existing_links: bool = False) -> None:
        self.dest = dest
        self.follow = follow_existing_links
        self.root = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self.no_overwrite = no_overwrite
        self.chown = chown
        self.lchown = lchown
        self.dir_times: list[tuple[list[str], int, int]] = []

    def __enter__(self) -> _Extractor:
        return self

    def __exit__(self, *exc) -> None:
        os.close(self.root)

    # one entry

    def entry(self, tf: tarfile.TarFile, ti: tarfile.TarInfo) -> None:
        if ti.type in (tarfile.XGLTYPE, tarfile.XHDTYPE):
            return
        name = clean_name(ti.name)
        raw = posixpath.normpath(ti.name)
        if raw == ".." or raw.startswith("../"):
            raise UntarError(f"{ti.name!r} is outside of {self.dest!r}")
        parts = name.split("/") if name else []
        if not parts:                       # "." (the destination itself) is left as it is
            return
        parent = self._parent(parts)
        try:
            base = parts[-1]
            try:
                st = os.stat(base, dir_fd=parent, follow_symlinks=False)
            except FileNotFoundError:
                st = None
            path = posixpath.join(self.dest, name)
            if st is not None:
                is_dir = stat.S_ISDIR(st.st_mode)
                if self.no_overwrite and is_dir and not ti.isdir():
                    raise UntarError(f"cannot overwrite directory {path!r} with non-directory {self.dest!r}")
                if self.no_overwrite and not is_dir and ti.isdir():
                    raise UntarError(f"cannot overwrite non-directory {path!r} with directory {self.dest!r}")
                if not (is_dir and ti.isdir()):
                    _remove(parent, base, is_dir)
            self._create(tf, ti, parent, base, parts)
        finally:
            os.close(parent)

    def _create(self, tf: tarfile.TarFile, ti: tarfile.TarInfo, parent: int, base: str, parts: list[str]) -> None:
        mode = ti.mode & 0o7777
        if ti.isdir():
            try:
                os.mkdir(base, 0o700, dir_fd=parent)
            except FileExistsError:
                pass
            fd = os.open(base, _O_DIR, dir_fd=parent)
            try:
                self._owner_mode_xattrs(ti, fd, mode)
            finally:
                os.close(fd)
            self.dir_times.append((parts, *_times(ti)))
            return
        if ti.isreg():
            fd = os.open(base, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                         dir_fd=parent)
            try:
                source = tf.extractfile(ti)
                left = ti.size
                while left > 0:
                    data = source.read(min(left, _CHUNK)) if source else b""
                    if not data:
                        raise UntarError(f"the archive ends inside the data of {ti.name!r}")
                    left -= len(data)
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view):]
                self._owner_mode_xattrs(ti, fd, mode)
                atime, mtime = _times(ti)
                os.utime(fd, ns=(atime, mtime))
            except BaseException as e:  # (a full disk): no half-written file stays
                with contextlib.suppress(OSError):
                    os.unlink(base, dir_fd=parent)
                if isinstance(e, OSError) and e.filename is None:
                    raise OSError(e.errno, e.strerror, posixpath.join(self.dest, *parts)) from None
                raise
            finally:
                os.close(fd)
            return
        if ti.issym():
            # Go's filepath.Join(dir, target): an absolute target is read from the directory too
            target = posixpath.normpath(posixpath.join(posixpath.dirname("/".join(parts)), ti.linkname.lstrip("/")))
            if target == ".." or target.startswith("../"):
                raise UntarError(f"invalid symlink {posixpath.join(self.dest, *parts)!r} -> {ti.linkname!r}")
            os.symlink(ti.linkname, base, dir_fd=parent)
        elif ti.islnk():
            target = clean_name(ti.linkname)
            raw = posixpath.normpath(ti.linkname)
            if not target or raw == ".." or raw.startswith("../"):
                raise UntarError(f"invalid hardlink {ti.name!r} -> {ti.linkname!r}")
            tparts = target.split("/")
            tparent = self._parent(tparts, create=False)
            try:
                os.link(tparts[-1], base, src_dir_fd=tparent, dst_dir_fd=parent, follow_symlinks=False)
            finally:
                os.close(tparent)
            return              # a hard link shares its target's owner, mode and times
        elif ti.ischr() or ti.isblk() or ti.isfifo():
            kind = stat.S_IFCHR if ti.ischr() else stat.S_IFBLK if ti.isblk() else stat.S_IFIFO
            os.mknod(base, kind | 0o600, os.makedev(ti.devmajor, ti.devminor) if kind != stat.S_IFIFO else 0,
                     dir_fd=parent)
        else:
            raise UntarError(f"unhandled tar header type {ti.type!r} of {ti.name!r}")
        self._node_metadata(ti, parent, base, mode)

    # metadata

    def _owner(self, ti: tarfile.TarInfo) -> tuple[int, int] | None:
        if self.lchown is None:
            return None
        return self.chown or (ti.uid, ti.gid)

    def _owner_mode_xattrs(self, ti: tarfile.TarInfo, fd: int, mode: int) -> None:
        owner = self._owner(ti)
        if owner is not None:
            os.fchown(fd, *owner)
        for key, value in _xattrs(ti):
            _setxattr(fd, key, value)
        os.fchmod(fd, mode)             # after chown, which clears set-id bits

    def _node_metadata(self, ti: tarfile.TarInfo, parent: int, base: str, mode: int) -> None:
        """Owner, xattrs, mode and times of a symlink, device or fifo, never following it."""
        owner = self._owner(ti)
        if owner is not None:
            os.chown(base, *owner, dir_fd=parent, follow_symlinks=False)
        if not ti.issym():
            fd = os.open(base, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
            try:
                for key, value in _xattrs(ti):
                    _setxattr(f"/proc/self/fd/{fd}", key, value)
                os.chmod(f"/proc/self/fd/{fd}", mode)
            except FileNotFoundError:   # no /proc (a chrooted view): chmod by name, still no symlink
                os.chmod(base, mode, dir_fd=parent)
            finally:
                os.close(fd)
        atime, mtime = _times(ti)
        os.utime(base, ns=(atime, mtime), dir_fd=parent, follow_symlinks=False)

    # directories, resolved without following symlinks

    def _parent(self, parts: list[str], *, create: bool = True) -> int:
        """A descriptor of the directory holding `parts[-1]`, opened from `dest` with O_NOFOLLOW
        at each step; missing directories are made 0755 (owned as the entries are)."""
        fd = os.dup(self.root)
        try:
            for name in parts[:-1]:
                try:
                    child = os.open(name, _O_DIR, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise UntarError(f"hard link target {'/'.join(parts)!r} is not in the archive") from None
                    os.mkdir(name, 0o755, dir_fd=fd)
                    child = os.open(name, _O_DIR, dir_fd=fd)
                    os.fchmod(child, 0o755)
                    owner = self.chown if self.lchown else None
                    if owner:
                        os.fchown(child, *owner)
                except OSError as e:
                    if e.errno in (errno.ELOOP, errno.ENOTDIR) and self.follow and _is_link(fd, name):
                        try:  # a link: followed, within the chroot (the archive's own cannot lead out of dest)
                            child = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=fd)
                        except OSError:
                            child = None
                        if child is not None:
                            os.close(fd)
                            fd = child
                            continue
                    if e.errno in (errno.ELOOP, errno.ENOTDIR):
                        raise UntarError(f"cannot extract {'/'.join(parts)!r}: {name!r} is not a directory "
                                         "(a symlink or a file)") from None
                    raise
                os.close(fd)
                fd = child
            return fd
        except BaseException:
            os.close(fd)
            raise

    def finish(self) -> None:
        for parts, atime, mtime in self.dir_times:
            try:
                parent = self._parent(parts, create=False)
            except (UntarError, OSError):
                continue
            try:
                fd = os.open(parts[-1], _O_DIR, dir_fd=parent)
                os.utime(fd, ns=(atime, mtime))
                os.close(fd)
            except OSError:
                pass
            finally:
                os.close(parent)


def _is_link(parent: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _remove(parent: int, name: str, is_dir: bool) -> None:
    if not is_dir:
        os.unlink(name, dir_fd=parent)
        return
    fd = os.open(name, _O_DIR, dir_fd=parent)
    try:
        for entry in os.listdir(fd):
            st = os.stat(entry, dir_fd=fd, follow_symlinks=False)
            _remove(fd, entry, stat.S_ISDIR(st.st_mode))
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=parent)


def _times(ti: tarfile.TarInfo) -> tuple[int, int]:
    mtime = _ns(ti.pax_headers.get("mtime"), ti.mtime)
    atime = _ns(ti.pax_headers.get("atime"), None)
    return (max(atime, mtime) if atime is not None else mtime), mtime


def _ns(text: str | None, fallback) -> int | None:
    if text:
        sign = -1 if text.startswith("-") else 1
        whole, _, frac = text.lstrip("+-").partition(".")
        try:
            return sign * (int(whole or "0") * 10**9 + int((frac + "000000000")[:9]))
        except ValueError:
            pass
    return None if fallback is None else int(fallback * 10**9)


def _xattrs(ti: tarfile.TarInfo):
    for key, value in ti.pax_headers.items():
        if key.startswith("SCHILY.xattr."):
            yield key[13:], value.encode("utf-8", "surrogateescape")


def _setxattr(target: int | str, key: str, value: bytes) -> None:
    try:
        os.setxattr(target, key, value)
    except OSError as e:
        if e.errno not in (errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
            raise
