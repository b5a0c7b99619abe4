"""cgroup v1 (legacy, and hybrid with a cgroup2 tree under key "")."""

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

UNLIMITED = -1


class V1Manager:
    version = 1

    __slots__ = ("paths",)

    def __init__(self, paths: dict[str, str]) -> None:
        self.paths = paths

    def _dir(self, controller: str) -> str | None:
        return self.paths.get(controller)

    def _distinct_dirs(self) -> list[str]:
        seen: list[str] = []
        for path in self.paths.values():
            if path not in seen:
                seen.append(path)
        return seen

    def create(self) -> None:
        for directory in self._distinct_dirs():
            os.makedirs(directory, 0o755, exist_ok=True)
        cpuset = self._dir("cpuset")
        if cpuset:
            _inherit_cpuset(cpuset)

    def apply(self, resources: dict) -> None:
        memory = resources.get("memory") or {}
        if memory:
            self._apply_memory(memory)
        cpu = resources.get("cpu") or {}
        if cpu:
            self._apply_cpu(cpu)
        limit = (resources.get("pids") or {}).get("limit")
        if limit is not None and self._dir("pids"):
            write(self.paths["pids"], "pids.max", "max" if limit <= 0 else limit)
        blkio = resources.get("blockIO") or {}
        if blkio:
            self._apply_blkio(blkio)
        if resources.get("devices") and self._dir("devices"):
            self._apply_devices(resources["devices"])
        for page in resources.get("hugepageLimits") or []:
            if self._dir("hugetlb"):
                write(self.paths["hugetlb"], f"hugetlb.{page['pageSize']}.limit_in_bytes", page["limit"])
        unified = resources.get("unified") or {}
        if unified:
            if "" not in self.paths:
                raise CgroupError(22, "linux.resources.unified needs cgroup v2, and this host has only cgroup v1")
            for name, value in unified.items():
                write(self.paths[""], name, value)

    def _apply_memory(self, memory: dict) -> None:
        directory = self._dir("memory")
        if directory is None:
            raise CgroupError(2, "memory limits asked for, but the memory controller is not mounted")
        limit, swap = memory.get("limit"), memory.get("swap")
        memsw = os.path.exists(f"{directory}/memory.memsw.limit_in_bytes")
        if swap not in (None, 0) and not memsw:
            if swap != limit and swap != UNLIMITED:
                raise CgroupError(95, "memory.swap asked for, but this kernel has no swap accounting "
                                      "(memory.memsw.limit_in_bytes is missing)")
            swap = None
        if limit not in (None, 0):
            if swap not in (None, 0) and memsw:
                # The kernel keeps limit <= memsw at every step: when the new limit is above
                # the current memsw, memsw must go up first; otherwise the limit goes first.
                current_memsw = read_int(directory, "memory.memsw.limit_in_bytes")
                if limit == UNLIMITED or limit > current_memsw:
                    write(directory, "memory.memsw.limit_in_bytes", swap)
                    write(directory, "memory.limit_in_bytes", limit)
                else:
                    write(directory, "memory.limit_in_bytes", limit)
                    write(directory, "memory.memsw.limit_in_bytes", swap)
            else:
                write(directory, "memory.limit_in_bytes", limit)
        elif swap not in (None, 0) and memsw:
            write(directory, "memory.memsw.limit_in_bytes", swap)
        if memory.get("reservation") not in (None, 0):
            write(directory, "memory.soft_limit_in_bytes", memory["reservation"])
        if memory.get("swappiness") is not None:
            write(directory, "memory.swappiness", memory["swappiness"])
        if memory.get("disableOOMKiller"):
            write(directory, "memory.oom_control", 1)

    def _apply_cpu(self, cpu: dict) -> None:
        directory = self._dir("cpu")
        if directory:
            if cpu.get("shares"):
                write(directory, "cpu.shares", cpu["shares"])
            if cpu.get("period"):
                write(directory, "cpu.cfs_period_us", cpu["period"])
            if cpu.get("quota"):
                write(directory, "cpu.cfs_quota_us", cpu["quota"])
            if cpu.get("realtimePeriod"):
                write(directory, "cpu.rt_period_us", cpu["realtimePeriod"])
            if cpu.get("realtimeRuntime"):
                write(directory, "cpu.rt_runtime_us", cpu["realtimeRuntime"])
        cpuset = self._dir("cpuset")
        if cpuset:
            if cpu.get("cpus"):
                write(cpuset, "cpuset.cpus", cpu["cpus"])
            if cpu.get("mems"):
                write(cpuset, "cpuset.mems", cpu["mems"])

    def _apply_blkio(self, blkio: dict) -> None:
        directory = self._dir("blkio")
        if directory is None:
            return
        if blkio.get("weight"):
            name = "blkio.weight" if os.path.exists(f"{directory}/blkio.weight") else "blkio.bfq.weight"
            if not os.path.exists(f"{directory}/{name}"):
                raise CgroupError(95, "blockIO.weight asked for, but no I/O scheduler here supports weights")
            write(directory, name, blkio["weight"])
        for key, name in (("throttleReadBpsDevice", "blkio.throttle.read_bps_device"),
                          ("throttleWriteBpsDevice", "blkio.throttle.write_bps_device"),
                          ("throttleReadIOPSDevice", "blkio.throttle.read_iops_device"),
                          ("throttleWriteIOPSDevice", "blkio.throttle.write_iops_device")):
            for rule in blkio.get(key) or []:
                write(directory, name, f"{rule['major']}:{rule['minor']} {rule['rate']}")

    def _apply_devices(self, rules: list[dict]) -> None:
        directory = self.paths["devices"]
        for rule in rules:
            kind = rule.get("type") or "a"
            major = "*" if rule.get("major") in (None, -1) else rule["major"]
            minor = "*" if rule.get("minor") in (None, -1) else rule["minor"]
            entry = "a" if kind == "a" and major == "*" and minor == "*" else f"{kind} {major}:{minor}"
            access = rule.get("access") or "rwm"
            write(directory, "devices.allow" if rule.get("allow") else "devices.deny",
                  entry if entry == "a" else f"{entry} {access}")

    def join_current_thread(self) -> None:
        """Move the calling thread into every v1 hierarchy by writing 0 to `tasks`.

        For a single-threaded caller this moves the whole process, and the kernel
        skips the global lock that a cgroup.procs write takes (and its RCU grace
        period, 5-20 ms): the container's init joins this way.
        """
        for directory in self._distinct_dirs():
            if directory != self.paths.get(""):
                write(directory, "tasks", 0)

    @property
    def unified_dir(self) -> str | None:
        """The cgroup2 directory of a hybrid host, which only cgroup.procs can join."""
        return self.paths.get("")

    def add_pid(self, pid: int) -> None:
        for directory in self._distinct_dirs():
            write(directory, "cgroup.procs", pid)

    def add_pid_to_unified(self, pid: int) -> None:
        if "" in self.paths:
            write(self.paths[""], "cgroup.procs", pid)

    def pids(self) -> list[int]:
        directory = self._dir("pids") or self._dir("freezer") or next(iter(self.paths.values()))
        return procs(directory)

    def freeze(self) -> None:
        directory = self.paths["freezer"]
        for attempt in range(1000):
            write(directory, "freezer.state", "FROZEN")
            if read(directory, "freezer.state") == "FROZEN":
                return
            time.sleep(0.001 * min(attempt + 1, 10))
        raise CgroupError(16, f"{directory}: the processes did not freeze")

    def thaw(self) -> None:
        write(self.paths["freezer"], "freezer.state", "THAWED")

    def is_frozen(self) -> bool:
        directory = self._dir("freezer")
        try:
            return directory is not None and read(directory, "freezer.state") != "THAWED"
        except FileNotFoundError:
            return False

    def kill_all(self, sig: int) -> None:
        """Signal every process; frozen meanwhile so that none can fork a new one unseen."""
        frozen = "freezer" in self.paths and os.path.isdir(self.paths["freezer"])
        if frozen:
            self.freeze()
        try:
            signal_all(self.pids(), sig)
        finally:
            if frozen:
                self.thaw()

    def destroy(self) -> None:
        for directory in self._distinct_dirs():
            remove_tree(directory)

    def oom_kill_count(self) -> int:
        directory = self._dir("memory")
        return read_keyed(directory, "memory.oom_control").get("oom_kill", 0) if directory else 0

    def stats(self) -> dict:
        memory, cpu, pids = self._dir("memory"), self._dir("cpuacct"), self._dir("pids")
        return {
            "memory": {
                "usage": read_int(memory, "memory.usage_in_bytes") if memory else 0,
                "max_usage": read_int(memory, "memory.max_usage_in_bytes") if memory else 0,
                "limit": read_int(memory, "memory.limit_in_bytes") if memory else 0,
                "stats": read_keyed(memory, "memory.stat") if memory else {},
                "oom_kill": self.oom_kill_count(),
            },
            "cpu": {"usage_ns": read_int(cpu, "cpuacct.usage") if cpu else 0},
            "pids": {"current": read_int(pids, "pids.current") if pids else 0,
                     "limit": read_int(pids, "pids.max") if pids else 0},
        }


def _inherit_cpuset(directory: str) -> None:
    """New v1 cpuset cgroups start with empty cpus/mems, in which no task may run:
    fill each new level from its parent, top down."""
    chain = []
    current = directory
    while os.path.exists(f"{current}/cpuset.cpus") and os.path.exists(f"{os.path.dirname(current)}/cpuset.cpus"):
        chain.append(current)
        current = os.path.dirname(current)
    for path in reversed(chain):
        parent = os.path.dirname(path)
        for name in ("cpuset.cpus", "cpuset.mems"):
            if not read(path, name):
                write(path, name, read(parent, name))
