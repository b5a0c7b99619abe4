"""OOM kills as they happen, for `oom` events while a container keeps running (the OOM killer
often takes a child, not the init), as containerd's OOM watcher reports them to dockerd.

One thread waits on an epoll for every watched container: on cgroup v1 an eventfd registered
on the memory cgroup's memory.oom_control through cgroup.event_control (the kernel signals it
on each OOM, and when the cgroup goes away); on cgroup v2 memory.events itself, which the
kernel marks (EPOLLPRI) whenever it changes. On each wake-up the cgroup's `oom_kill` count is
read again, and each new kill is handed to the daemon's loop. The shim's exit report counts
every kill of the run, so the daemon reports at exit what was not seen here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import select
import threading
from collections.abc import Callable

from orlop.shim import oom

log = logging.getLogger("orlopd")
# v1 signals the eventfd when the cgroup runs out of memory, before the OOM killer has chosen
# and counted its victim: the count is read again a few times after a wake-up.
RECHECK_SECONDS = 0.02
RECHECKS = 25


class _Watch:
    __slots__ = ("cid", "counter", "fd", "seen", "reported")

    def __init__(self, cid: str, counter: str, fd: int, seen: int) -> None:
        self.cid, self.counter, self.fd, self.seen = cid, counter, fd, seen
        self.reported = 0  # kills handed to the daemon


class OomMonitor:
    def __init__(self, on_oom: Callable[[str], bool]) -> None:
        """`on_oom(cid)` runs on the daemon's loop, once per OOM kill seen; True if it reported it."""
        self.on_oom = on_oom
        self.loop: asyncio.AbstractEventLoop | None = None
        self.watches: dict[str, _Watch] = {}
        self.by_fd: dict[int, _Watch] = {}
        self.lock = threading.Lock()
        self.poller: select.epoll | None = None
        self.thread: threading.Thread | None = None

    def watch(self, cid: str, pid: int) -> None:
        """Follow the memory cgroup of the container whose init is `pid` (kills before now are
        not reported). Best effort: a host without a memory cgroup has no OOM kills to see."""
        self.unwatch(cid)
        counter = oom.counter_file(pid)
        if counter is None:
            return
        try:
            fd, events = _open_notifier(counter)
        except OSError as e:
            log.debug("not watching %s for OOM kills: %s", cid[:12], e)
            return
        self._start()
        entry = _Watch(cid, counter, fd, oom.kills(counter))
        with self.lock:
            self.watches[cid] = entry
            self.by_fd[fd] = entry
        assert self.poller is not None
        self.poller.register(fd, events)

    def unwatch(self, cid: str) -> int:
        """Stop following `cid` (on the daemon's loop); how many of its OOM kills were reported."""
        with self.lock:
            entry = self.watches.pop(cid, None)
            if entry is None:
                return 0
            self.by_fd.pop(entry.fd, None)
        if self.poller is not None:
            with contextlib.suppress(OSError, ValueError):
                self.poller.unregister(entry.fd)
        os.close(entry.fd)
        return entry.reported

    # -- the thread ---------------------------------------------------------------------------
    def _start(self) -> None:
        if self.thread is not None:
            return
        self.loop = asyncio.get_running_loop()
        self.poller = select.epoll()
        self.thread = threading.Thread(target=self._run, name="oom-monitor", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        assert self.poller is not None
        pending: dict[_Watch, int] = {}  # woken without a new kill yet: checks left
        while True:
            try:
                ready = self.poller.poll(RECHECK_SECONDS if pending else -1)
            except InterruptedError:
                continue
            except (OSError, ValueError):
                return  # closed
            for fd, _ in ready:
                with self.lock:
                    entry = self.by_fd.get(fd)
                if entry is not None:
                    _drain(entry.fd, entry.counter.endswith("memory.oom_control"))
                    pending[entry] = RECHECKS
            for entry in list(pending):
                pending[entry] -= 1
                with self.lock:
                    current = self.watches.get(entry.cid) is entry
                if not current or self._check(entry) or pending[entry] <= 0:
                    del pending[entry]

    def _check(self, entry: _Watch) -> bool:
        """Hand on the new kills; False when there are none (yet)."""
        kills = oom.kills(entry.counter)
        if not os.path.exists(entry.counter):
            with contextlib.suppress(OSError, ValueError):
                self.poller.unregister(entry.fd)  # the cgroup is gone (an eventfd is signalled then)
            return True
        new = kills - entry.seen
        if new <= 0:
            return False
        entry.seen = kills
        assert self.loop is not None
        try:
            for _ in range(new):
                self.loop.call_soon_threadsafe(self._deliver, entry)
        except RuntimeError:
            pass  # the daemon's loop is closed: it is shutting down
        return True

    def _deliver(self, entry: _Watch) -> None:
        """On the daemon's loop, where unwatch runs too: a kill that arrives after its container's
        exit was handled is left to the exit report, which counts it."""
        if self.watches.get(entry.cid) is entry and self.on_oom(entry.cid):
            entry.reported += 1


def _open_notifier(counter: str) -> tuple[int, int]:
    """A descriptor that becomes ready when the cgroup's OOM state changes, and its epoll events."""
    directory = os.path.dirname(counter)
    if counter.endswith("memory.oom_control"):  # v1: an eventfd for the memcg's OOM notifications
        efd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        try:
            control = os.open(counter, os.O_RDONLY | os.O_CLOEXEC)
            try:
                fd = os.open(os.path.join(directory, "cgroup.event_control"), os.O_WRONLY | os.O_CLOEXEC)
                try:
                    os.write(fd, f"{efd} {control}".encode())
                finally:
                    os.close(fd)
            finally:
                os.close(control)
        except OSError:
            os.close(efd)
            raise
        return efd, select.EPOLLIN
    fd = os.open(counter, os.O_RDONLY | os.O_CLOEXEC)  # v2: memory.events, polled for changes
    _drain(fd)
    return fd, select.EPOLLPRI | select.EPOLLERR


def _drain(fd: int, eventfd: bool = False) -> None:
    """Read what woke us: an eventfd's count, or the kernfs file again (which re-arms its poll)."""
    with contextlib.suppress(OSError):
        if eventfd:
            os.read(fd, 8)
        else:
            os.lseek(fd, 0, os.SEEK_SET)
            os.read(fd, 4096)
