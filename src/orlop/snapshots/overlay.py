"""An overlayfs snapshotter in containerd's model.

A snapshot is a directory `<root>/snapshots/<id>/fs` (plus `work` when active). Committed
snapshots are read-only layers, keyed by chain ID for image layers; an active snapshot is
a writable upper dir on top of its committed parents; a view is a read-only look at a
committed snapshot. The snapshotter computes mounts and never mounts itself: `Mount.mount`
does that.

`<root>/metadata.json` maps keys to ids, parents and kinds. It is rewritten atomically
(temp, fsync, rename) under a lock (flock on `<root>/lock`, so several processes may share a
root). Directories are created before the metadata names them and deleted after it stops
naming them, so a crash at any step leaves consistent metadata and at most orphan
directories, which `cleanup()` removes.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import BinaryIO, NamedTuple

from orlop.errors import DISK_FULL
from orlop.fsutil import fsync_dir, write_atomic
from orlop.linux import syscalls
from orlop.snapshots.unpack import LayerStats, unpack_layer

ACTIVE = "active"
COMMITTED = "committed"
VIEW = "view"

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


class SnapshotError(Exception):
    pass


class SnapshotNotFound(SnapshotError, LookupError):
    pass


class SnapshotExists(SnapshotError):
    pass


class SnapshotStateError(SnapshotError):
    """The snapshot is of the wrong kind for the operation, or other snapshots depend on it."""


@dataclass(frozen=True)
class Info:
    name: str
    kind: str                    # active | committed | view
    parent: str | None
    created: float
    updated: float
    labels: dict[str, str] = field(default_factory=dict)


class Usage(NamedTuple):
    size: int                    # bytes of disk used (st_blocks), hard links counted once
    inodes: int


def chain_ids(diff_ids: Iterable[str]) -> list[str]:
    """The chain ID of each prefix of a layer stack (OCI image spec: ChainID(L0) = DiffID(L0),
    ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln)))."""
    chain: list[str] = []
    for diff_id in diff_ids:
        if not diff_id.startswith("sha256:") or len(diff_id) != 71:
            raise ValueError(f"diff ID {diff_id!r} is not a sha256 digest (sha256:<64 hex digits>)")
        if chain:
            diff_id = "sha256:" + hashlib.sha256(f"{chain[-1]} {diff_id}".encode()).hexdigest()
        chain.append(diff_id)
    return chain


def chain_id(diff_ids: Iterable[str]) -> str:
    """The chain ID of a whole layer stack: the key of its top committed snapshot."""
    chain = chain_ids(diff_ids)
    if not chain:
        raise ValueError("chain ID of an empty layer list")
    return chain[-1]


# --- mounts ----------------------------------------------------------------------------------

_FLAG_OPTIONS = {
    "ro": (True, syscalls.MS_RDONLY), "rw": (False, syscalls.MS_RDONLY),
    "nosuid": (True, syscalls.MS_NOSUID), "suid": (False, syscalls.MS_NOSUID),
    "nodev": (True, syscalls.MS_NODEV), "dev": (False, syscalls.MS_NODEV),
    "noexec": (True, syscalls.MS_NOEXEC), "exec": (False, syscalls.MS_NOEXEC),
    "bind": (True, syscalls.MS_BIND), "rbind": (True, syscalls.MS_BIND | syscalls.MS_REC),
}


class Mount(NamedTuple):
    """A mount to make, containerd-style: `mount -t <type> <source> -o <options>`."""

    type: str
    source: str
    options: list[str]

    def mount(self, target: str) -> None:
        flags, data = 0, []
        for option in self.options:
            if option in _FLAG_OPTIONS:
                on, bit = _FLAG_OPTIONS[option]
                flags = flags | bit if on else flags & ~bit
            else:
                data.append(option)
        if flags & syscalls.MS_BIND:
            bind = flags & (syscalls.MS_BIND | syscalls.MS_REC)
            syscalls.mount(self.source, target, None, bind)
            rest = flags & ~(syscalls.MS_BIND | syscalls.MS_REC)
            if rest:                                # a bind mount takes ro/nosuid/... on remount only
                try:
                    syscalls.mount(None, target, None, syscalls.MS_REMOUNT | syscalls.MS_BIND | rest)
                except OSError:
                    syscalls.umount(target, syscalls.MNT_DETACH)
                    raise
            return
        options = ",".join(data)
        if len(options) < _PAGE_SIZE:
            syscalls.mount(self.source, target, self.type, flags, options)
        else:
            _mount_compacted(self.type, self.source, target, flags, data)

    @staticmethod
    def unmount(target: str, *, detach: bool = False) -> None:
        syscalls.umount(target, syscalls.MNT_DETACH if detach else 0)


def mount_all(mounts: Iterable[Mount], target: str) -> None:
    for m in mounts:
        m.mount(target)


def _mount_compacted(fstype: str, source: str, target: str, flags: int, data: list[str]) -> None:
    """Options longer than a page (mount(2)'s limit; ~80 layers of absolute paths): make the
    layer paths relative to their common directory and mount from a child working there, as
    containerd does. The child is the `mount` command, so this process's cwd never changes."""
    paths = [p for o in data if o.startswith(("lowerdir=", "upperdir=", "workdir="))
             for p in o.split("=", 1)[1].split(":")]
    base = os.path.commonpath(paths)
    compact = []
    for o in data:
        key, _, value = o.partition("=")
        if key in ("lowerdir", "upperdir", "workdir"):
            value = ":".join(os.path.relpath(p, base) for p in value.split(":"))
            o = f"{key}={value}"
        compact.append(o)
    options = ",".join(compact + [name for name, (on, bit) in _FLAG_OPTIONS.items()
                                  if on and bit != syscalls.MS_BIND and flags & bit == bit])
    if len(options) >= _PAGE_SIZE:
        raise OSError(7, f"mount {fstype} on {target}: options are {len(options)} bytes even with relative "
                         f"paths, over the kernel's {_PAGE_SIZE}: too many layers")
    done = subprocess.run(["mount", "-t", fstype, "-o", options, source, os.path.abspath(target)],
                          cwd=base, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise OSError(f"mount {fstype} on {target}: {done.stderr.strip()}")


# --- the snapshotter ---------------------------------------------------------------------------

class OverlaySnapshotter:
    def __init__(self, root: str, *, index_off: bool | None = None) -> None:
        root = os.path.abspath(root)
        if any(c in root for c in ",:"):
            raise ValueError(f"snapshotter root {root!r} contains ',' or ':', which overlay mount options "
                             "cannot carry: choose another directory")
        self.root = root
        self._snapshots = os.path.join(root, "snapshots")
        self._metadata = os.path.join(root, "metadata.json")
        os.makedirs(self._snapshots, 0o700, exist_ok=True)
        if index_off is None:           # as containerd: only if this kernel's overlay knows the option
            index_off = os.path.exists("/sys/module/overlay/parameters/index")
        self._options = ["index=off"] if index_off else []
        self._mutex = threading.Lock()

    # the interface

    def prepare(self, key: str, parent: str | None = None, *, labels: dict[str, str] | None = None) -> list[Mount]:
        """A new writable snapshot on top of committed `parent`; returns its mounts."""
        return self._create(ACTIVE, key, parent, labels)

    def view(self, key: str, parent: str | None = None, *, labels: dict[str, str] | None = None) -> list[Mount]:
        """A new read-only snapshot of committed `parent`; returns its mounts."""
        return self._create(VIEW, key, parent, labels)

    def commit(self, name: str, key: str, *, labels: dict[str, str] | None = None) -> None:
        """Turn active snapshot `key` into committed snapshot `name` (`key` is gone afterwards).
        The snapshot must not be mounted any more."""
        with self._locked() as meta:
            s = self._get(meta, key)
            if s["kind"] != ACTIVE:
                raise SnapshotStateError(f"cannot commit snapshot {key!r}: it is {s['kind']}, not active")
            if name in meta["snapshots"]:
                raise SnapshotExists(f"cannot commit {key!r} as {name!r}: a snapshot named {name!r} exists")
            usage = _disk_usage(self._fs(s["id"]))
            del meta["snapshots"][key]
            meta["snapshots"][name] = dict(s, kind=COMMITTED, updated=time.time(),
                                           labels={**s["labels"], **(labels or {})}, usage=list(usage))
            self._save(meta)

    def remove(self, key: str) -> None:
        """Remove a snapshot no other snapshot is based on (unmount it first)."""
        with self._locked() as meta:
            s = self._get(meta, key)
            children = sorted(k for k, v in meta["snapshots"].items() if v["parent"] == key)
            if children:
                raise SnapshotStateError(f"cannot remove snapshot {key!r}: {', '.join(map(repr, children))} "
                                         "are based on it; remove them first")
            del meta["snapshots"][key]
            path = os.path.join(self._snapshots, s["id"])
            doomed = os.path.join(self._snapshots, f"rm-{s['id']}")
            try:
                self._save(meta)
            except OSError as e:
                if e.errno not in DISK_FULL:
                    raise
                # A full disk, maybe filled by this very snapshot: its files go first, to make
                # room for the metadata. Renamed before: a crash from here leaves `rm-<id>`,
                # which tells cleanup() to finish the removal.
                os.rename(path, doomed)
                for entry in os.listdir(doomed):
                    shutil.rmtree(os.path.join(doomed, entry))
                try:
                    self._save(meta)
                except OSError:  # still no room: the snapshot stays, empty, as the metadata says
                    os.rename(doomed, path)
                    os.mkdir(os.path.join(path, "fs"), 0o755)
                    if s["kind"] == ACTIVE:
                        os.mkdir(os.path.join(path, "work"), 0o711)
                    raise
                os.rmdir(doomed)
                return
            # The metadata no longer names it: a crash from here leaves an orphan for cleanup().
            os.rename(path, doomed)
            shutil.rmtree(doomed)

    def mounts(self, key: str) -> list[Mount]:
        with self._locked() as meta:
            s = self._get(meta, key)
            if s["kind"] == COMMITTED:
                raise SnapshotStateError(f"snapshot {key!r} is committed: mount a view of it or prepare on it")
            return self._mounts(meta, s)

    def stat(self, key: str) -> Info:
        with self._locked() as meta:
            return _info(key, self._get(meta, key))

    def walk(self) -> Iterator[Info]:
        with self._locked() as meta:
            infos = [_info(k, v) for k, v in sorted(meta["snapshots"].items())]
        yield from infos

    def usage(self, key: str) -> Usage:
        """Disk used by the snapshot's own layer (not its parents)."""
        with self._locked() as meta:
            s = self._get(meta, key)
        if s["kind"] == COMMITTED and s.get("usage"):
            return Usage(*s["usage"])
        return _disk_usage(self._fs(s["id"]))

    def keys_by_dir(self) -> dict[str, str]:
        """{layer directory (what lowerdir/upperdir name): snapshot key} of every snapshot:
        how a mount's directories are traced back to chain IDs."""
        with self._locked() as meta:
            return {self._fs(s["id"]): key for key, s in meta["snapshots"].items()}

    def upper_path(self, key: str) -> str:
        """The directory an active snapshot's changes live in: where a layer is unpacked."""
        with self._locked() as meta:
            s = self._get(meta, key)
        if s["kind"] != ACTIVE:
            raise SnapshotStateError(f"snapshot {key!r} is {s['kind']}: only an active snapshot has an upper dir")
        return self._fs(s["id"])

    def cleanup(self) -> list[str]:
        """Remove what a crash left behind: snapshot directories the metadata does not name,
        unfinished layer unpacks inside committed snapshots, and the snapshots whose removal
        a full disk interrupted. Returns the paths (and keys) removed."""
        removed = []
        with self._locked() as meta:
            finish = [k for k, v in meta["snapshots"].items()
                      if not os.path.exists(os.path.join(self._snapshots, v["id"]))
                      and os.path.exists(os.path.join(self._snapshots, f"rm-{v['id']}"))]
            if finish:  # removals a full disk interrupted (see remove())
                for key in finish:
                    del meta["snapshots"][key]
                self._save(meta)
                removed += finish
            kinds = {v["id"]: v["kind"] for v in meta["snapshots"].values()}
            for name in sorted(os.listdir(self._snapshots)):
                path = os.path.join(self._snapshots, name)
                if name not in kinds:
                    shutil.rmtree(path)
                    removed.append(path)
                elif kinds[name] == COMMITTED:
                    for leftover in os.listdir(path):
                        if leftover.startswith(".fs.unpack-"):
                            shutil.rmtree(os.path.join(path, leftover))
                            removed.append(os.path.join(path, leftover))
        return removed

    def apply_layer(self, stream: BinaryIO, parent: str | None, *, diff_id: str | None = None,
                    compression: str | None = None) -> tuple[str, LayerStats | None]:
        """Unpack a layer on top of committed `parent` (a chain ID, or None for the base layer)
        and commit it under its chain ID, which is returned with the unpack's stats. If
        `diff_id` is given and that chain ID is already committed, nothing is read (stats
        None); otherwise the layer must hash to it."""
        if diff_id is not None:
            name = chain_id([parent, diff_id]) if parent else chain_id([diff_id])
            try:
                if self.stat(name).kind == COMMITTED:
                    return name, None
            except SnapshotNotFound:
                pass
        key = f"extract-{uuid.uuid4().hex} {parent or ''}"
        self.prepare(key, parent, labels={"orlop.unpack": "true"})
        try:
            stats = unpack_layer(stream, self.upper_path(key), compression=compression,
                                 expected_diff_id=diff_id)
            name = chain_id([parent, stats.diff_id]) if parent else stats.diff_id
            try:
                self.commit(name, key)
            except SnapshotExists:          # another unpacker got there first: theirs is the same
                self.remove(key)
            return name, stats
        except BaseException:
            try:
                self.remove(key)
            except SnapshotNotFound:
                pass
            raise

    # internals

    def _create(self, kind: str, key: str, parent: str | None, labels: dict[str, str] | None) -> list[Mount]:
        if not key:
            raise ValueError("a snapshot key must not be empty")
        with self._locked() as meta:
            if key in meta["snapshots"]:
                raise SnapshotExists(f"snapshot {key!r} already exists")
            if parent is not None:
                p = self._get(meta, parent)
                if p["kind"] != COMMITTED:
                    raise SnapshotStateError(f"parent {parent!r} of {key!r} is {p['kind']}: only a committed "
                                             "snapshot can be a parent")
            new = tempfile.mkdtemp(prefix="new-", dir=self._snapshots)
            path = None
            try:
                os.mkdir(os.path.join(new, "fs"), 0o755)
                os.chmod(os.path.join(new, "fs"), 0o755)
                if kind == ACTIVE:
                    os.mkdir(os.path.join(new, "work"), 0o711)
                n = meta["next_id"]
                while os.path.lexists(os.path.join(self._snapshots, str(n))):
                    n += 1                  # an orphan from a crash: cleanup() will take it
                path = os.path.join(self._snapshots, str(n))
                os.rename(new, path)
                new = None
                now = time.time()
                s = {"id": str(n), "kind": kind, "parent": parent, "created": now, "updated": now,
                     "labels": dict(labels or {})}
                meta["snapshots"][key] = s
                meta["next_id"] = n + 1
                self._save(meta)
            except BaseException:
                if new or path:
                    shutil.rmtree(new or path, ignore_errors=True)
                raise
            return self._mounts(meta, s)

    def _mounts(self, meta: dict, s: dict) -> list[Mount]:
        lowers = []
        parent = s["parent"]
        while parent is not None:
            p = meta["snapshots"][parent]
            lowers.append(self._fs(p["id"]))
            parent = p["parent"]
        if not lowers:      # no parent: the snapshot's own directory, bind-mounted
            return [Mount("bind", self._fs(s["id"]), ["ro" if s["kind"] == VIEW else "rw", "rbind"])]
        if s["kind"] == ACTIVE:
            options = [f"workdir={self._work(s['id'])}", f"upperdir={self._fs(s['id'])}"]
        elif len(lowers) == 1:  # a view of one layer: overlay needs two lowers, a bind will do
            return [Mount("bind", lowers[0], ["ro", "rbind"])]
        else:
            options = []
        return [Mount("overlay", "overlay", [*options, "lowerdir=" + ":".join(lowers), *self._options])]

    def _fs(self, id_: str) -> str:
        return os.path.join(self._snapshots, id_, "fs")

    def _work(self, id_: str) -> str:
        return os.path.join(self._snapshots, id_, "work")

    @staticmethod
    def _get(meta: dict, key: str) -> dict:
        try:
            return meta["snapshots"][key]
        except KeyError:
            raise SnapshotNotFound(f"no snapshot {key!r}") from None

    @contextmanager
    def _locked(self) -> Iterator[dict]:
        with self._mutex:
            fd = os.open(os.path.join(self.root, "lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield self._load()
            finally:
                os.close(fd)

    def _load(self) -> dict:
        try:
            with open(self._metadata) as f:
                meta = json.load(f)
        except FileNotFoundError:
            return {"version": 1, "next_id": 1, "snapshots": {}}
        if meta.get("version") != 1:
            raise SnapshotError(f"{self._metadata}: unknown metadata version {meta.get('version')!r}")
        return meta

    def _save(self, meta: dict) -> None:
        write_atomic(self._metadata, json.dumps(meta, indent=1, sort_keys=True).encode())
        fsync_dir(self.root)


def _info(key: str, s: dict) -> Info:
    return Info(key, s["kind"], s["parent"], s["created"], s["updated"], dict(s["labels"]))


def _disk_usage(path: str) -> Usage:
    seen: set[int] = set()
    size = inodes = 0
    stack = [path]
    while stack:
        with os.scandir(stack.pop()) as it:
            for entry in it:
                st = entry.stat(follow_symlinks=False)
                if st.st_nlink > 1:
                    if st.st_ino in seen:
                        continue
                    seen.add(st.st_ino)
                size += st.st_blocks * 512
                inodes += 1
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
    return Usage(size, inodes)
