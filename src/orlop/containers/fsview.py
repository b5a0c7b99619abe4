"""A private view of a container's filesystem, as dockerd's containerFSView: one thread in a
mount namespace of its own, its root directory changed to the container's root, with the
container's volumes and bind mounts (and /etc/hosts, hostname, resolv.conf) mounted at
their places. Functions submitted to the view run in that thread, where `/` is the
container's `/`: a symlink, absolute or full of `..`, resolves inside it, as it would for
the container's own processes, so nothing done there can reach the host's files.

A stopped container's root (its overlay snapshot) is mounted inside the namespace; a
running one's is already mounted in the daemon's namespace and is seen there as it is.
Nothing is ever mounted in the daemon's namespace: when the thread ends, the kernel
takes the namespace and all its mounts with it.

Code running in the view must not import anything (imports would be looked up in the
container) nor look up user or group names (NSS would read, and load libraries from, the
container): the modules it uses are imported here and at the top of theirs.
"""

from __future__ import annotations

import concurrent.futures
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import NamedTuple

from orlop.linux import syscalls as sc
from orlop.runtime.rootfs import remount_bind, resolve_in_root
from orlop.snapshots.overlay import Mount

CLONE_FS = 0x00000200


class Bind(NamedTuple):
    destination: str    # in the container
    source: str         # on the host
    readonly: bool


class FSViewError(OSError):
    pass


class ContainerFSView:
    def __init__(self, root: str, root_mounts: list[Mount] | None = None, binds: list[Bind] = (),
                 name: str = "orlop-fsview") -> None:
        """`root`: the directory that becomes `/`; `root_mounts`: what to mount there first
        unless something is mounted there already (a stopped container's snapshot)."""
        self.root = root
        self.root_mounts = root_mounts
        self.binds = sorted(binds, key=lambda b: len([p for p in b.destination.split("/") if p]))
        self._tasks: queue.SimpleQueue = queue.SimpleQueue()
        self._ready: concurrent.futures.Future = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._tid: int | None = None

    # -- the interface (from any other thread) ----------------------------------------------------
    def open(self) -> ContainerFSView:
        """Start the view's thread; returns once the view is set up (or raises why not)."""
        self._thread.start()
        self._ready.result()
        return self

    def submit(self, fn: Callable, *args) -> concurrent.futures.Future:
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._tasks.put((fn, args, future))
        return future

    def run(self, fn: Callable, *args):
        return self.submit(fn, *args).result()

    def close(self) -> None:
        """End the thread (after what was submitted) and wait until the kernel has dropped
        its namespace."""
        if not self._thread.is_alive():
            return
        self._tasks.put(None)
        self._thread.join()
        if self._tid is not None:
            deadline = time.monotonic() + 5
            while os.path.exists(f"/proc/self/task/{self._tid}") and time.monotonic() < deadline:
                time.sleep(0.002)

    def __enter__(self) -> ContainerFSView:
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the thread ---------------------------------------------------------------------------------
    def _main(self) -> None:
        self._tid = threading.get_native_id()
        try:
            self._set_up()
        except BaseException as e:
            self._ready.set_exception(e)
            return
        self._ready.set_result(None)
        while True:
            task = self._tasks.get()
            if task is None:
                return
            fn, args, future = task
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args))
            except BaseException as e:
                future.set_exception(e)

    def _set_up(self) -> None:
        # A namespace (and fs_struct: root, cwd) of this thread only; the daemon's mounts seen
        # as slaves, ours never propagated back.
        sc.unshare(sc.CLONE_NEWNS | CLONE_FS)
        sc.mount(None, "/", None, sc.MS_REC | sc.MS_SLAVE)
        if self.root_mounts is not None and not os.path.ismount(self.root):
            os.makedirs(self.root, 0o755, exist_ok=True)
            for mount in self.root_mounts:
                mount.mount(self.root)
        for bind in self.binds:
            self._bind(bind)
        os.chroot(self.root)
        os.chdir("/")

    def _bind(self, bind: Bind) -> None:
        try:
            is_dir = os.path.isdir(bind.source)
        except OSError:
            return
        if not os.path.exists(bind.source):
            return
        target = resolve_in_root(self.root, bind.destination)
        if not os.path.lexists(target):
            os.makedirs(os.path.dirname(target), 0o755, exist_ok=True)
            if is_dir:
                os.mkdir(target, 0o755)
            else:
                os.close(os.open(target, os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644))
        fd = os.open(target, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            real = os.readlink(f"/proc/self/fd/{fd}")
            if real != self.root and not real.startswith(self.root.rstrip("/") + "/"):
                raise FSViewError(f"mount point {bind.destination} resolves outside the container's root")
            sc.mount(bind.source, f"/proc/self/fd/{fd}", None, sc.MS_BIND | sc.MS_REC)
        finally:
            os.close(fd)
        sc.mount(None, real, None, sc.MS_REC | sc.MS_PRIVATE)
        if bind.readonly:
            remount_bind(real, sc.MS_RDONLY)
