"""cgroup v2 (the unified hierarchy): one directory per container, key "" in `paths`.

OCI resources are written in v1 terms; they are converted here as runc converts
them (cpu.weight from shares, memory.swap.max = swap - limit, ...). Device rules
become an eBPF program attached to the directory (see devices.py, bpf.py).
"""

from __future__ import annotations

import errno
import os
import time

from orlop.linux.cgroups import resources as res
from orlop.linux.cgroups.common import (
    CgroupError,
    InvalidResource,
    exists,
    procs,
    read,
    read_int,
    read_keyed,
    write,
)
from orlop.linux.cgroups.manager import CgroupManager
from orlop.linux.cgroups.resources import blkio_weight_to_io_weight, shares_to_weight

__all__ = ["V2Manager", "blkio_weight_to_io_weight", "create_tree", "shares_to_weight"]

_FREEZE_TIMEOUT = 5.0
_IO_MAX_KEYS = (("throttleReadBpsDevice", "rbps"), ("throttleWriteBpsDevice", "wbps"),
                ("throttleReadIOPSDevice", "riops"), ("throttleWriteIOPSDevice", "wiops"))


class V2Manager(CgroupManager):
    __slots__ = ()
    version = 2

    @property
    def path(self) -> str:
        return self.paths[""]

    # -- create / join -------------------------------------------------------------------
    def create(self) -> None:
        create_tree(self.path)

    def add_pid(self, pid: int) -> None:
        write(self.path, "cgroup.procs", pid)

    def join_current_thread(self) -> None:
        """Nothing: a v2 domain cgroup is joined whole, through add_pid/add_pid_to_unified."""

    def pids(self) -> list[int]:
        return procs(self.path)

    # -- limits ----------------------------------------------------------------------------
    def apply(self, resources: dict) -> None:
        """Write linux.resources, checked whole first (nothing is written if a value is wrong)."""
        from orlop.linux.cgroups.devices import bpf_program, effective, parse_rules

        res.validate(resources)
        device_rules = parse_rules(resources["devices"]) if resources.get("devices") is not None else None
        cpu = resources.get("cpu") or {}
        if cpu.get("realtimeRuntime") or cpu.get("realtimePeriod"):
            raise InvalidResource("linux.resources.cpu.realtimeRuntime/realtimePeriod: realtime CPU limits "
                                  "exist only in cgroup v1", errno.EOPNOTSUPP)
        network = resources.get("network") or {}
        if network.get("classID") is not None or network.get("priorities"):
            raise InvalidResource("linux.resources.network: net_cls and net_prio exist only in cgroup v1 "
                                  "(on v2, match the cgroup path in nftables or eBPF instead)", errno.EOPNOTSUPP)
        pids = resources.get("pids") or {}
        if pids.get("limit") is not None:
            self._write("pids.max", "max" if pids["limit"] <= 0 else pids["limit"], "pids.limit")
        if resources.get("memory"):
            self._apply_memory(resources["memory"])
        if resources.get("blockIO"):
            self._apply_io(resources["blockIO"])
        if cpu:
            self._apply_cpu(cpu)
        if device_rules is not None:
            from orlop.linux.cgroups.bpf import replace_device_filter

            replace_device_filter(self.path, bpf_program(*effective(device_rules)))
        if cpu.get("cpus"):
            self._write("cpuset.cpus", cpu["cpus"], "cpu.cpus")
        if cpu.get("mems"):
            self._write("cpuset.mems", cpu["mems"], "cpu.mems")
        for page in resources.get("hugepageLimits") or []:
            name = f"hugetlb.{page['pageSize']}.max"
            self._write(name, page["limit"], "hugepageLimits")
            rsvd = f"hugetlb.{page['pageSize']}.rsvd.max"  # reservations too (5.11+)
            if exists(self.path, rsvd):
                write(self.path, rsvd, page["limit"])
        for line in res.rdma_lines(resources.get("rdma") or {}):
            self._write("rdma.max", line, "rdma")
        for name, value in (resources.get("unified") or {}).items():
            self._write(name, value, f"unified[{name!r}]")  # last: raw values override the converted ones

    def _write(self, name: str, value: str | int, field: str) -> None:
        """Write a controller file; a missing one is explained (controller not enabled?)."""
        try:
            write(self.path, name, value)
        except CgroupError as e:
            if e.errno != errno.ENOENT or not os.path.isdir(self.path):
                raise
            controller = name.partition(".")[0]
            try:
                available = read(self.path, "cgroup.controllers").split()
            except OSError:
                available = []
            if controller not in available and controller != "cgroup":
                reason = (f"the {controller} controller is not enabled for this cgroup (it is not in "
                          f"{os.path.dirname(self.path)}/cgroup.subtree_control; available here: "
                          f"{' '.join(available) or 'none'})")
            else:
                reason = "this kernel has no such file"
            raise InvalidResource(f"linux.resources.{field}: cannot write {name}: {reason}", errno.EOPNOTSUPP) from None

    def _apply_memory(self, memory: dict) -> None:
        limit = memory.get("limit") or None
        swap_max = res.swap_to_v2(memory.get("swap") or None, limit)
        if swap_max is not None:
            if exists(self.path, "memory.swap.max"):
                write(self.path, "memory.swap.max", swap_max)
            elif swap_max not in (0, "max"):
                # No swap accounting: "no swap" or "unlimited" can be let go, a real limit cannot (runc).
                raise InvalidResource(f"linux.resources.memory.swap: {memory.get('swap')} needs swap accounting, "
                                      f"but {self.path}/memory.swap.max does not exist", errno.EOPNOTSUPP)
        if limit is not None:
            self._write("memory.max", "max" if limit == res.UNLIMITED else limit, "memory.limit")
        reservation = memory.get("reservation") or None
        if reservation is not None:
            self._write("memory.low", "max" if reservation == res.UNLIMITED else reservation, "memory.reservation")
        # Not in cgroup v2, ignored as runc ignores them: swappiness (global only),
        # disableOOMKiller (no per-cgroup switch), kernel and kernelTCP (always accounted).

    def _apply_cpu(self, cpu: dict) -> None:
        idle = cpu.get("idle")
        if idle is not None:
            self._write("cpu.idle", idle, "cpu.idle")
        if cpu.get("shares") and idle != 1:  # an idle cgroup has no weight
            self._write("cpu.weight", shares_to_weight(cpu["shares"]), "cpu.shares")
        quota, period = cpu.get("quota") or 0, cpu.get("period") or 0
        if quota or period:
            if not quota:
                # cpu.max holds both: keep the current quota when only the period changes.
                quota_text = _read_first(self.path, "cpu.max") or "max"
            else:
                quota_text = "max" if quota == res.UNLIMITED else str(quota)
            self._write("cpu.max", f"{quota_text} {period}" if period else quota_text, "cpu.quota")
        if cpu.get("burst") is not None:
            self._write("cpu.max.burst", cpu["burst"], "cpu.burst")

    def _apply_io(self, blkio: dict) -> None:
        # BFQ takes blkio's own scale in io.bfq.weight; io.weight (io.cost) has 1-10000.
        bfq = exists(self.path, "io.bfq.weight")
        if blkio.get("weight"):
            if bfq:
                write(self.path, "io.bfq.weight", blkio["weight"])
            else:
                self._write("io.weight", blkio_weight_to_io_weight(blkio["weight"]), "blockIO.weight")
        # leafWeight has no v2 counterpart (it weighed a cgroup's own tasks against its children).
        for device in blkio.get("weightDevice") or []:
            if device.get("weight"):
                numbers = f"{device['major']}:{device['minor']}"
                if bfq:
                    write(self.path, "io.bfq.weight", f"{numbers} {device['weight']}")
                else:
                    self._write("io.weight", f"{numbers} {blkio_weight_to_io_weight(device['weight'])}",
                                "blockIO.weightDevice")
        for key, name in _IO_MAX_KEYS:
            for device in blkio.get(key) or []:
                rate = device["rate"] or "max"  # v1 wrote 0 to drop a limit; io.max says "max"
                self._write("io.max", f"{device['major']}:{device['minor']} {name}={rate}", f"blockIO.{key}")

    # -- freezer -----------------------------------------------------------------------------
    def can_freeze(self) -> bool:
        return exists(self.path, "cgroup.freeze")

    def freeze(self) -> None:
        """cgroup.freeze = 1, then wait for cgroup.events to say "frozen 1"."""
        self._write_freeze(1)
        deadline = time.monotonic() + _FREEZE_TIMEOUT
        delay = 0.0005
        while read_keyed(self.path, "cgroup.events").get("frozen") != 1:
            if time.monotonic() >= deadline:
                write(self.path, "cgroup.freeze", 0)  # do not leave it half frozen
                raise CgroupError(errno.EBUSY, f"freezing {self.path}: cgroup.events still says frozen 0 "
                                               f"after {_FREEZE_TIMEOUT:g} s")
            time.sleep(delay)
            delay = min(delay * 2, 0.01)

    def thaw(self) -> None:
        self._write_freeze(0)

    def _write_freeze(self, value: int) -> None:
        try:
            write(self.path, "cgroup.freeze", value)
        except CgroupError as e:
            if e.errno == errno.ENOENT and os.path.isdir(self.path):
                raise CgroupError(errno.EOPNOTSUPP, f"cannot pause: {self.path}/cgroup.freeze does not exist "
                                                    "(the cgroup v2 freezer needs Linux 5.2)") from None
            raise

    def is_frozen(self) -> bool:
        try:
            return read(self.path, "cgroup.freeze") == "1"
        except OSError:
            return False

    # -- statistics ----------------------------------------------------------------------------
    def oom_kill_count(self) -> int:
        return read_keyed(self.path, "memory.events").get("oom_kill", 0)

    def stats(self) -> dict:
        """{"memory": {usage, max_usage, limit, swap_usage, oom_kill, stats}, "cpu": {usage_ns,
        user_ns, system_ns, periods, throttled_periods, throttled_ns}, "pids": {current, limit}};
        a limit of None means unlimited; a value the cgroup does not show (its controller is
        not enabled) is None too."""
        path = self.path
        cpu = read_keyed(path, "cpu.stat")  # there even without the cpu controller
        return {
            "memory": {
                "usage": read_int(path, "memory.current", None),
                "max_usage": read_int(path, "memory.peak", None),  # 5.19+
                "limit": read_int(path, "memory.max", None),
                "swap_usage": read_int(path, "memory.swap.current", None),
                "oom_kill": self.oom_kill_count(),
                "stats": read_keyed(path, "memory.stat"),
            },
            "cpu": {
                "usage_ns": cpu.get("usage_usec", 0) * 1000,
                "user_ns": cpu.get("user_usec", 0) * 1000,
                "system_ns": cpu.get("system_usec", 0) * 1000,
                "periods": cpu.get("nr_periods", 0),
                "throttled_periods": cpu.get("nr_throttled", 0),
                "throttled_ns": cpu.get("throttled_usec", 0) * 1000,
            },
            "pids": {"current": read_int(path, "pids.current", None), "limit": read_int(path, "pids.max", None)},
        }


def _read_first(directory: str, name: str) -> str | None:
    try:
        return read(directory, name).split()[0]
    except (OSError, IndexError):
        return None


# -- the tree down to a container's cgroup ----------------------------------------------------

def mount_root(path: str) -> str:
    """The root of the cgroup2 mount holding `path` (which may not exist yet).

    Climb to the first existing cgroup, then on while the parent is a cgroup too;
    the hierarchy's real root has no cgroup.type (a cgroup namespace's root does,
    but its parent is then outside cgroupfs).
    """
    current = path
    while not exists(current, "cgroup.controllers"):
        parent = os.path.dirname(current)
        if parent == current:
            raise CgroupError(errno.ENOENT, f"{path} is not inside a cgroup2 filesystem")
        current = parent
    while exists(current, "cgroup.type"):
        parent = os.path.dirname(current)
        if parent == current or not exists(parent, "cgroup.controllers"):
            break
        current = parent
    return current


def create_tree(path: str) -> None:
    """mkdir -p `path`, delegating every available controller down to it.

    Each level's cgroup.subtree_control gets the controllers its cgroup.controllers
    offers, as runc does, so that limits (and `stats`) work in the leaf. A level that
    refuses (e.g. an ancestor holding processes: "no internal processes") is left as
    it is; a limit that needs the missing controller then fails with a clear error.
    """
    root = mount_root(path)
    current = root
    for name in path[len(root):].strip("/").split("/") if path != root else []:
        enable_controllers(current)
        current = f"{current}/{name}"
        try:
            os.mkdir(current, 0o755)
        except FileExistsError:
            pass
        except OSError as e:
            raise CgroupError(e.errno, f"creating cgroup {current}: {e.strerror}") from None


def enable_controllers(directory: str) -> None:
    try:
        available = read(directory, "cgroup.controllers").split()
        enabled = set(read(directory, "cgroup.subtree_control").split())
    except OSError:
        return
    missing = [c for c in available if c not in enabled]
    if not missing:
        return
    try:
        write(directory, "cgroup.subtree_control", " ".join("+" + c for c in missing))
    except CgroupError:
        for controller in missing:  # one refused controller fails the whole write: try each alone
            try:
                write(directory, "cgroup.subtree_control", "+" + controller)
            except CgroupError:
                pass
