"""Which resource limits this host's cgroups can apply (moby's pkg/sysinfo): what the
daemon checks a create or update request against, so that a limit the kernel cannot
enforce is discarded with Docker's warning instead of failing the start."""

from __future__ import annotations

import functools
import os

from orlop.linux.cgroups.common import CgroupError, Hierarchies, read_hierarchies


class HostSupport:
    """The cgroup features of a host; `cpus`/`mems` are the CPUs and memory nodes offered
    (cpuset lists like "0-3")."""

    def __init__(self, *, version: int, memory: bool = False, swap: bool = False, reservation: bool = False,
                 swappiness: bool = False, oom_kill_disable: bool = False, pids: bool = False,
                 cpu_shares: bool = False, cpu_cfs: bool = False, cpu_realtime: bool = False, cpuset: bool = False,
                 cpus: str = "", mems: str = "", blkio_weight: bool = False) -> None:
        self.version = version
        self.memory, self.swap, self.reservation = memory, swap, reservation
        self.swappiness, self.oom_kill_disable, self.pids = swappiness, oom_kill_disable, pids
        self.cpu_shares, self.cpu_cfs, self.cpu_realtime = cpu_shares, cpu_cfs, cpu_realtime
        self.cpuset, self.cpus, self.mems = cpuset, cpus, mems
        self.blkio_weight = blkio_weight

    def __repr__(self) -> str:
        return f"HostSupport({', '.join(f'{k}={v!r}' for k, v in vars(self).items())})"


@functools.cache
def detect() -> HostSupport:
    """This host's support, read once (cgroup mounts do not change under a running daemon)."""
    try:
        found = read_hierarchies()
    except (CgroupError, OSError):
        return HostSupport(version=1)
    return from_hierarchies(found)


def from_hierarchies(found: Hierarchies) -> HostSupport:
    if found.unified_only:
        return _v2(found.v2_mount or "/sys/fs/cgroup")
    return _v1(found.v1)


def _v1(mounts: dict[str, str]) -> HostSupport:
    def has(controller: str, name: str) -> bool:
        return controller in mounts and os.path.exists(os.path.join(mounts[controller], name))

    cpuset = "cpuset" in mounts
    return HostSupport(
        version=1,
        memory=has("memory", "memory.limit_in_bytes"),
        swap=has("memory", "memory.memsw.limit_in_bytes"),
        reservation=has("memory", "memory.soft_limit_in_bytes"),
        swappiness=has("memory", "memory.swappiness"),
        oom_kill_disable=has("memory", "memory.oom_control"),
        pids="pids" in mounts,
        cpu_shares=has("cpu", "cpu.shares"),
        cpu_cfs=has("cpu", "cpu.cfs_quota_us"),
        cpu_realtime=has("cpu", "cpu.rt_runtime_us"),
        cpuset=cpuset,
        cpus=_read(mounts["cpuset"], "cpuset.cpus") if cpuset else "",
        mems=_read(mounts["cpuset"], "cpuset.mems") if cpuset else "",
        # CFQ had blkio.weight, BFQ has blkio.bfq.weight; with neither (none, mq-deadline) no weight.
        blkio_weight=has("blkio", "blkio.weight") or has("blkio", "blkio.bfq.weight"),
    )


def _v2(root: str) -> HostSupport:
    controllers = set(_read(root, "cgroup.controllers").split())
    memory = "memory" in controllers
    return HostSupport(
        version=2, memory=memory, swap=memory, reservation=memory,
        swappiness=False, oom_kill_disable=False,  # no per-cgroup switch in cgroup v2
        pids="pids" in controllers, cpu_shares="cpu" in controllers, cpu_cfs="cpu" in controllers,
        cpuset="cpuset" in controllers,
        cpus=_read(root, "cpuset.cpus.effective") or _online("cpu"),
        mems=_read(root, "cpuset.mems.effective") or _online("node"),
        blkio_weight="io" in controllers,
    )


def _read(directory: str, name: str) -> str:
    try:
        with open(os.path.join(directory, name)) as f:
            return f.read().strip()
    except OSError:
        return ""


def _online(kind: str) -> str:
    return _read(f"/sys/devices/system/{kind}", "online")


def parse_list(text: str) -> set[int]:
    """A cpuset list ("0-3,6") as numbers; ValueError naming the text when malformed (moby's
    ParseUintList: "invalid format: <text>")."""
    numbers: set[int] = set()
    if text == "":
        return numbers
    for part in text.split(","):
        low, dash, high = part.partition("-")
        if not low.isdigit() or (dash and not high.isdigit()):
            raise ValueError(f"invalid format: {text}")
        if dash:
            if int(high) < int(low):
                raise ValueError(f"invalid format: {text}")
            numbers.update(range(int(low), int(high) + 1))
        else:
            numbers.add(int(low))
    return numbers


def usable_cpus() -> int:
    """CPUs this process may run on (Go's runtime.NumCPU, what moby's sysinfo.NumCPU reports)."""
    try:
        return len(os.sched_getaffinity(0))
    except OSError:
        return os.cpu_count() or 1
