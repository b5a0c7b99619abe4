"""cgroup v2 (the unified hierarchy): one directory per container.

Device rules (linux.resources.devices) need an eBPF program on v2; this manager
does not load one yet, so on a pure v2 host device access is limited only by
the device nodes the runtime creates (a documented gap, as with runc's
--no-device-cgroup builds).
"""

from __future__ import annotations

import os
import time

from orlop.linux.cgroups.common import (
    CgroupError,
    procs,
    read,
    read_int,
    read_keyed,
    remove_tree,
    signal_all,
    write,
)

_WANTED_CONTROLLERS = ("cpuset", "cpu", "io", "memory", "hugetlb", "pids", "rdma", "misc")


def shares_to_weight(shares: int) -> int:
    """cgroup v1 cpu.shares [2, 262144] -> v2 cpu.weight [1, 10000], as runc converts."""
    return 1 + ((shares - 2) * 9999) // 262142


def blkio_weight_to_io_weight(weight: int) -> int:
    """v1 blkio.weight [10, 1000] -> v2 io.weight [1, 10000]."""
    return 1 + (weight - 10) * 9999 // 990


class V2Manager:
    version = 2

    __slots__ = ("paths",)

    def __init__(self, paths: dict[str, str]) -> None:
        self.paths = paths

    @property
    def path(self) -> str:
        return self.paths[""]

    def create(self) -> None:
        os.makedirs(self.path, 0o755, exist_ok=True)
        self._enable_controllers()

    def _enable_controllers(self) -> None:
        """Delegate every available controller down to the container's cgroup."""
        mountpoint = _mount_root(self.path)
        chain = []
        current = os.path.dirname(self.path)
        while current.startswith(mountpoint):
            chain.append(current)
            if current == mountpoint:
                break
            current = os.path.dirname(current)
        for directory in reversed(chain):
            try:
                available = read(directory, "cgroup.controllers").split()
                enabled = read(directory, "cgroup.subtree_control").split()
            except OSError:
                continue
            missing = [c for c in _WANTED_CONTROLLERS if c in available and c not in enabled]
            if missing:
                try:
                    write(directory, "cgroup.subtree_control", " ".join("+" + c for c in missing))
                except CgroupError:
                    pass  # e.g. processes in an inner cgroup: limits on those controllers then fail clearly

    def apply(self, resources: dict) -> None:
        memory = resources.get("memory") or {}
        limit, swap = memory.get("limit"), memory.get("swap")
        if limit not in (None, 0):
            write(self.path, "memory.max", "max" if limit == -1 else limit)
        if swap not in (None, 0):
            if swap == -1 or limit in (None, 0, -1):
                swap_max = "max" if swap == -1 else swap
            else:
                swap_max = swap - limit  # OCI counts memory+swap; v2 counts swap alone
            if os.path.exists(f"{self.path}/memory.swap.max"):
                write(self.path, "memory.swap.max", swap_max)
            elif swap_max not in (0, "max"):
                raise CgroupError(95, "memory.swap asked for, but this kernel has no swap accounting")
        if memory.get("reservation") not in (None, 0):
            write(self.path, "memory.low", memory["reservation"])
        if memory.get("disableOOMKiller"):
            raise CgroupError(95, "memory.disableOOMKiller is not supported by cgroup v2")
        cpu = resources.get("cpu") or {}
        if cpu.get("shares"):
            write(self.path, "cpu.weight", shares_to_weight(cpu["shares"]))
        if cpu.get("quota") or cpu.get("period"):
            quota = cpu.get("quota") or -1
            write(self.path, "cpu.max", f"{'max' if quota <= 0 else quota} {cpu.get('period') or 100000}")
        if cpu.get("idle") is not None and os.path.exists(f"{self.path}/cpu.idle"):
            write(self.path, "cpu.idle", cpu["idle"])
        if cpu.get("cpus"):
            write(self.path, "cpuset.cpus", cpu["cpus"])
        if cpu.get("mems"):
            write(self.path, "cpuset.mems", cpu["mems"])
        limit = (resources.get("pids") or {}).get("limit")
        if limit is not None:
            write(self.path, "pids.max", "max" if limit <= 0 else limit)
        weight = (resources.get("blockIO") or {}).get("weight")
        if weight:
            name = "io.weight" if os.path.exists(f"{self.path}/io.weight") else "io.bfq.weight"
            write(self.path, name, blkio_weight_to_io_weight(weight) if name == "io.weight" else weight)
        for page in resources.get("hugepageLimits") or []:
            write(self.path, f"hugetlb.{page['pageSize']}.max", page["limit"])
        for name, value in (resources.get("unified") or {}).items():
            write(self.path, name, value)

    def join_current_thread(self) -> None:
        """Nothing to do cheaply on v2: domain cgroups are joined through cgroup.procs."""

    @property
    def unified_dir(self) -> str:
        return self.path

    def add_pid(self, pid: int) -> None:
        write(self.path, "cgroup.procs", pid)

    add_pid_to_unified = add_pid

    def pids(self) -> list[int]:
        return procs(self.path)

    def freeze(self) -> None:
        write(self.path, "cgroup.freeze", 1)
        for attempt in range(1000):
            if read_keyed(self.path, "cgroup.events").get("frozen") == 1:
                return
            time.sleep(0.001 * min(attempt + 1, 10))
        raise CgroupError(16, f"{self.path}: the processes did not freeze")

    def thaw(self) -> None:
        write(self.path, "cgroup.freeze", 0)

    def is_frozen(self) -> bool:
        try:
            return read(self.path, "cgroup.freeze") == "1"
        except OSError:
            return False

    def kill_all(self, sig: int) -> None:
        if not os.path.isdir(self.path):
            return
        if sig == 9 and os.path.exists(f"{self.path}/cgroup.kill"):
            write(self.path, "cgroup.kill", 1)
            return
        self.freeze()
        try:
            signal_all(self.pids(), sig)
        finally:
            self.thaw()

    def destroy(self) -> None:
        remove_tree(self.path)

    def oom_kill_count(self) -> int:
        return read_keyed(self.path, "memory.events").get("oom_kill", 0)

    def stats(self) -> dict:
        memory_stat = read_keyed(self.path, "memory.stat")
        return {
            "memory": {
                "usage": read_int(self.path, "memory.current"),
                "max_usage": read_int(self.path, "memory.peak"),
                "limit": read_int(self.path, "memory.max"),
                "stats": memory_stat,
                "oom_kill": self.oom_kill_count(),
            },
            "cpu": {"usage_ns": read_keyed(self.path, "cpu.stat").get("usage_usec", 0) * 1000},
            "pids": {"current": read_int(self.path, "pids.current"), "limit": read_int(self.path, "pids.max")},
        }


def _mount_root(path: str) -> str:
    """The cgroup2 mount point above `path` (the first ancestor without cgroup.type... the
    root has no cgroup.type file)."""
    current = path
    while current != "/":
        parent = os.path.dirname(current)
        if not os.path.exists(f"{parent}/cgroup.controllers"):
            return current
        if not os.path.exists(f"{parent}/cgroup.type"):
            return parent
        current = parent
    return current
