"""The content store: blobs (layers, configs, manifests) addressed by digest.

Layout, as containerd's local store:
    <root>/blobs/sha256/<hex>          committed content, read-only, never modified
    <root>/ingest/<hash of ref>/data   a write in progress, resumable by its ref
                               /ref    the ref (e.g. "layer-sha256:...") it belongs to

A blob becomes visible only by `Writer.commit`: the data is checked against the
expected digest and size, fsync'ed, and renamed into blobs/. A crash at any
point leaves either nothing, or an ingest that a later pull resumes (or `prune_ingests`
removes: orlopd, at start, all but pulls'); never a half-written blob under its digest. A
write that fails (a full disk: ENOSPC names the ingest's file) leaves no ingest, except a
pull's download, kept to be resumed once there is room. Two writers for one ref
(two pulls of one layer, in this process or another) are serialised by a lock
on the ingest directory, so the second finds the blob committed and writes nothing.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import time
from collections.abc import Iterator

from orlop.fsutil import fsync_dir, write_all


class ContentError(OSError):
    pass


class DigestMismatch(ContentError):
    pass


def parse_digest(digest: str) -> tuple[str, str]:
    algorithm, _, hexpart = digest.partition(":")
    if algorithm != "sha256" or len(hexpart) != 64 or not all(c in "0123456789abcdef" for c in hexpart):
        raise ContentError(errno.EINVAL, f"invalid digest {digest!r}: expected sha256:<64 lowercase hex digits>")
    return algorithm, hexpart


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class ContentStore:
    def __init__(self, root: str) -> None:
        self.root = root
        self.blobs = os.path.join(root, "blobs", "sha256")
        self.ingests = os.path.join(root, "ingest")
        os.makedirs(self.blobs, 0o700, exist_ok=True)
        os.makedirs(self.ingests, 0o700, exist_ok=True)

    def path(self, digest: str) -> str:
        return os.path.join(self.blobs, parse_digest(digest)[1])

    def exists(self, digest: str) -> bool:
        return os.path.exists(self.path(digest))

    def size(self, digest: str) -> int:
        try:
            return os.stat(self.path(digest)).st_size
        except FileNotFoundError:
            raise ContentError(errno.ENOENT, f"content {digest} not found") from None

    def read(self, digest: str) -> bytes:
        try:
            with open(self.path(digest), "rb") as f:
                return f.read()
        except FileNotFoundError:
            raise ContentError(errno.ENOENT, f"content {digest} not found") from None

    def open(self, digest: str):
        try:
            return open(self.path(digest), "rb")
        except FileNotFoundError:
            raise ContentError(errno.ENOENT, f"content {digest} not found") from None

    def put(self, data: bytes, digest: str | None = None) -> str:
        """Store a small blob (manifest, config) in one go; returns its digest."""
        digest = digest or sha256_digest(data)
        if not self.exists(digest):
            with self.writer(f"put-{digest}", digest, len(data)) as w:
                if not w.committed:
                    w.write(data)
                    w.commit()
        return digest

    def writer(self, ref: str, expected: str | None = None, size: int | None = None) -> Writer:
        return Writer(self, ref, expected, size)

    def walk(self) -> Iterator[str]:
        for name in os.listdir(self.blobs):
            if len(name) == 64:
                yield "sha256:" + name

    def delete(self, digest: str) -> None:
        try:
            os.unlink(self.path(digest))
        except FileNotFoundError:
            pass

    def prune_ingests(self, older_than: float = 0, *, keep_resumable: bool = False) -> int:
        """Remove abandoned writes (not locked by a live writer) older than `older_than` seconds;
        with `keep_resumable`, all but the downloads a pull resumes (what orlopd does at start:
        what else a crash left is never taken up again)."""
        removed = 0
        for name in os.listdir(self.ingests):
            directory = os.path.join(self.ingests, name)
            if keep_resumable and _ref(directory).startswith(RESUMABLE_PREFIX):
                continue
            try:
                lock = os.open(os.path.join(directory, "lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError:
                continue
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(lock)
                continue
            try:
                if time.time() - os.stat(directory).st_mtime >= older_than:
                    for entry in os.listdir(directory):
                        os.unlink(os.path.join(directory, entry))
                    os.rmdir(directory)
                    removed += 1
            finally:
                os.close(lock)
        return removed


RESUMABLE_PREFIX = "blob-"  # a pull's ref for a blob it downloads: "blob-sha256:..."


def _ref(directory: str) -> str:
    try:
        with open(os.path.join(directory, "ref")) as f:
            return f.read()
    except OSError:
        return ""


class Writer:
    """A resumable write of one blob. Use as a context manager:

        with store.writer(ref, digest, size) as w:
            if not w.committed:          # another writer committed it meanwhile
                w.write(chunk)...        # continues at w.offset after a crash
                w.commit()
    """

    def __init__(self, store: ContentStore, ref: str, expected: str | None, size: int | None) -> None:
        self.store = store
        self.ref = ref
        self.expected = expected
        self.size = size
        self.dir = os.path.join(store.ingests, hashlib.sha256(ref.encode()).hexdigest())
        self.data_path = os.path.join(self.dir, "data")
        self.committed = False
        self.offset = 0
        self._lock = -1
        self._fd = -1
        self._hash = hashlib.sha256()

    def __enter__(self) -> Writer:
        self.try_open(blocking=True)
        return self

    async def open_async(self) -> Writer:
        """__enter__ for asyncio code: waits for another writer of the same ref without
        blocking the event loop. Close with __exit__."""
        import asyncio

        while not self.try_open(blocking=False):
            await asyncio.sleep(0.05)
        return self

    def try_open(self, blocking: bool) -> bool:
        """Take the ref's lock (waiting for another writer, or not) and get ready to write."""
        while True:
            os.makedirs(self.dir, 0o700, exist_ok=True)
            if self._lock < 0:
                self._lock = os.open(os.path.join(self.dir, "lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(self._lock, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                return False
            if os.fstat(self._lock).st_nlink:
                break
            # the writer we waited for finished and removed the ingest, its lock with it: a new one
            os.close(self._lock)
            self._lock = -1
        if self.expected and self.store.exists(self.expected):
            self.committed = True
            return True
        try:
            ref = os.open(os.path.join(self.dir, "ref"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            try:
                write_all(ref, self.ref.encode(), os.path.join(self.dir, "ref"))
            finally:
                os.close(ref)
            self._fd = os.open(self.data_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._resume()
        except BaseException as e:  # (a full disk): no writer, nothing left of it
            self.__exit__(type(e), e, e.__traceback__)
            raise
        return True

    def _resume(self) -> None:
        """Re-hash what an earlier, interrupted write left, to continue after it."""
        while chunk := os.read(self._fd, 1 << 20):
            self._hash.update(chunk)
        self.offset = os.lseek(self._fd, 0, os.SEEK_CUR)
        if self.size is not None and self.offset > self.size:
            self.truncate()

    def truncate(self) -> None:
        """Start over (the server would not resume, or the data is wrong)."""
        os.ftruncate(self._fd, 0)
        os.lseek(self._fd, 0, os.SEEK_SET)
        self._hash = hashlib.sha256()
        self.offset = 0

    def write(self, data: bytes) -> None:
        if self.size is not None and self.offset + len(data) > self.size:
            raise ContentError(errno.EFBIG, f"{self.ref}: more data than the {self.size} bytes announced")
        try:
            write_all(self._fd, data, self.data_path)
        except OSError:
            # what fitted of `data` goes: the ingest stays `offset` bytes long, as hashed
            os.ftruncate(self._fd, self.offset)
            os.lseek(self._fd, self.offset, os.SEEK_SET)
            raise
        self._hash.update(data)
        self.offset += len(data)

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()

    def commit(self) -> str:
        digest = self.digest
        if self.size is not None and self.offset != self.size:
            raise ContentError(errno.EIO, f"{self.ref}: got {self.offset} bytes, expected {self.size}")
        if self.expected and digest != self.expected:
            self.truncate()
            raise DigestMismatch(errno.EIO, f"{self.ref}: content has digest {digest}, expected {self.expected}")
        os.fsync(self._fd)
        target = self.store.path(digest)
        os.chmod(self.data_path, 0o400)
        os.rename(self.data_path, target)
        fsync_dir(self.store.blobs)
        self.committed = True
        return digest

    def __exit__(self, *exc) -> None:
        if self._fd >= 0:
            os.close(self._fd)
        if self.committed or exc[0] is not None:
            # Committed, or failed (a full disk, a bad archive): nothing to keep. Only a pull
            # keeps what it fetched to resume it, by leaving with __exit__(None, None, None).
            for name in ("ref", "data"):
                try:
                    os.unlink(os.path.join(self.dir, name))
                except FileNotFoundError:
                    pass
            try:
                os.unlink(os.path.join(self.dir, "lock"))
                os.rmdir(self.dir)
            except OSError:
                pass  # another writer is waiting on the lock: it will clean up
        os.close(self._lock)
        self._fd = self._lock = -1
