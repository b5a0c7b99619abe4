"""cgroup v1: one directory per hierarchy (legacy hosts), plus, on a hybrid host,
the cgroup2 directory under key "" when the resources need it."""

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

UNLIMITED_BYTES = 1 << 62   # v1 reports "no limit" as ~2^63 rounded down to a page
_FREEZE_TIMEOUT = 5.0
_THROTTLE_FILES = (("throttleReadBpsDevice", "blkio.throttle.read_bps_device"),
                   ("throttleWriteBpsDevice", "blkio.throttle.write_bps_device"),
                   ("throttleReadIOPSDevice", "blkio.throttle.read_iops_device"),
                   ("throttleWriteIOPSDevice", "blkio.throttle.write_iops_device"))


class V1Manager(CgroupManager):
    __slots__ = ()
    version = 1

    def _dir(self, controller: str, field: str | None = None) -> str:
        """The hierarchy's directory; with `field`, a missing hierarchy is an error naming it."""
        directory = self.paths.get(controller)
        if directory is None:
            raise InvalidResource(f"linux.resources.{field}: this host has no {controller} cgroup hierarchy "
                                  "mounted", errno.EOPNOTSUPP)
        return directory

    def v1_dirs(self) -> list[str]:
        unified = self.paths.get("")
        return [d for d in self.distinct_dirs() if d != unified]

    # -- create / join -------------------------------------------------------------------
    def create(self) -> None:
        for directory in self.v1_dirs():
            try:
                os.makedirs(directory, 0o755, exist_ok=True)
            except OSError as e:
                raise CgroupError(e.errno, f"creating cgroup {directory}: {e.strerror}") from None
        if "cpuset" in self.paths:
            _inherit_cpuset(self.paths["cpuset"])
        if "" in self.paths:
            from orlop.linux.cgroups.v2 import create_tree

            create_tree(self.paths[""])

    def add_pid(self, pid: int) -> None:
        for directory in self.distinct_dirs():
            write(directory, "cgroup.procs", pid)

    def join_current_thread(self) -> None:
        """Move the calling thread into every v1 hierarchy by writing 0 to `tasks`.

        For a single-threaded caller this moves the whole process, and the kernel
        skips the global lock a cgroup.procs write takes (and its RCU grace period,
        5-20 ms): the container's init joins this way. The cgroup2 directory, if
        any, is joined through add_pid_to_unified.
        """
        for directory in self.v1_dirs():
            write(directory, "tasks", 0)

    def pids(self) -> list[int]:
        for controller in ("pids", "freezer", "devices", "memory", "cpu"):
            if controller in self.paths:
                return procs(self.paths[controller])
        return procs(next(iter(self.paths.values()))) if self.paths else []

    # -- limits ---------------------------------------------------------------------------
    def apply(self, resources: dict) -> None:
        """Write linux.resources, checked whole first (nothing is written if a value is wrong)."""
        from orlop.linux.cgroups.devices import parse_rules

        res.validate(resources)
        device_rules = parse_rules(resources["devices"]) if resources.get("devices") is not None else None
        cpu = resources.get("cpu") or {}
        if cpu.get("cpus") or cpu.get("mems"):
            self._apply_cpuset(cpu)
        if device_rules is not None:
            directory = self._dir("devices", "devices")
            for rule in device_rules:
                write(directory, "devices.allow" if rule.allow else "devices.deny", rule.v1_value())
        if _has_values(resources.get("memory")):
            self._apply_memory(resources["memory"])
        if cpu:
            self._apply_cpu(cpu)
        pids = resources.get("pids") or {}
        if pids.get("limit") is not None:
            write(self._dir("pids", "pids.limit"), "pids.max", "max" if pids["limit"] <= 0 else pids["limit"])
        if resources.get("blockIO"):
            self._apply_blkio(resources["blockIO"])
        for page in resources.get("hugepageLimits") or []:
            self._apply_hugepages(page)
        if resources.get("network"):
            self._apply_network(resources["network"])
        if resources.get("rdma"):
            directory = self._dir("rdma", "rdma")
            for line in res.rdma_lines(resources["rdma"]):
                write(directory, "rdma.max", line)
        if resources.get("unified"):
            self._apply_unified(resources["unified"])

    def _apply_cpuset(self, cpu: dict) -> None:
        directory = self._dir("cpuset", "cpu.cpus")
        if cpu.get("cpus"):
            write(directory, "cpuset.cpus", cpu["cpus"])
        if cpu.get("mems"):
            write(directory, "cpuset.mems", cpu["mems"])

    def _apply_memory(self, memory: dict) -> None:
        directory = self._dir("memory", "memory")
        limit = memory.get("limit") or None
        swap = memory.get("swap") or None
        has_memsw = exists(directory, "memory.memsw.limit_in_bytes")
        if limit == res.UNLIMITED and swap is None and has_memsw:
            swap = res.UNLIMITED  # unlimited memory with swap unset means both unlimited (runc)
        if swap is not None and not has_memsw:
            # Without swap accounting there is no memsw file. Asking for no more swap than
            # memory, or for unlimited, can be let go (runc does so on v2); a real limit cannot.
            if swap not in (res.UNLIMITED, limit):
                raise InvalidResource(
                    f"linux.resources.memory.swap: {swap} needs swap accounting, but {directory}/"
                    "memory.memsw.limit_in_bytes does not exist (boot with swapaccount=1, or leave swap unset)",
                    errno.EOPNOTSUPP)
            swap = None
        if limit is not None and swap is not None:
            # The kernel keeps limit <= memsw after every write. When the new memsw is
            # above the current limit, memsw goes first (the limit may then rise to meet
            # it); otherwise the limit goes first (it must come down below the new memsw).
            current = read_int(directory, "memory.limit_in_bytes", None)
            if swap == res.UNLIMITED or current is None or current < swap:
                _write_memory(directory, "memory.memsw.limit_in_bytes", swap)
                _write_memory(directory, "memory.limit_in_bytes", limit)
            else:
                _write_memory(directory, "memory.limit_in_bytes", limit)
                _write_memory(directory, "memory.memsw.limit_in_bytes", swap)
        elif limit is not None:
            _write_memory(directory, "memory.limit_in_bytes", limit)
        elif swap is not None:
            _write_memory(directory, "memory.memsw.limit_in_bytes", swap)
        if memory.get("reservation"):
            write(directory, "memory.soft_limit_in_bytes", memory["reservation"])
        if memory.get("kernelTCP"):
            write(directory, "memory.kmem.tcp.limit_in_bytes", memory["kernelTCP"])
        # memory.kernel is ignored, as runc does: kmem limits are deprecated and unreliable.
        swappiness = memory.get("swappiness")
        if swappiness is not None and swappiness != res.UNLIMITED:
            write(directory, "memory.swappiness", swappiness)
        if memory.get("disableOOMKiller"):
            write(directory, "memory.oom_control", 1)

    def _apply_cpu(self, cpu: dict) -> None:
        fields = ("shares", "quota", "period", "burst", "realtimeRuntime", "realtimePeriod", "idle")
        if not any(cpu.get(name) is not None for name in fields):
            return
        directory = self._dir("cpu", "cpu")
        if cpu.get("shares"):
            write(directory, "cpu.shares", cpu["shares"])
        quota, period = cpu.get("quota") or 0, cpu.get("period") or 0
        period_pending = False
        if period:
            try:
                write(directory, "cpu.cfs_period_us", period)
            except CgroupError as e:
                # A shorter period can be refused while the current quota/period would then
                # exceed the parent's; with a new quota coming, retry after writing it.
                if e.errno != errno.EINVAL or not quota:
                    raise
                period_pending = True
        if quota:
            write(directory, "cpu.cfs_quota_us", quota)
            if period_pending:
                write(directory, "cpu.cfs_period_us", period)
        if cpu.get("burst") is not None:
            write(directory, "cpu.cfs_burst_us", cpu["burst"])
        # Realtime: the period first, so that the runtime is checked against the new one.
        if cpu.get("realtimePeriod"):
            write(directory, "cpu.rt_period_us", cpu["realtimePeriod"])
        if cpu.get("realtimeRuntime"):
            write(directory, "cpu.rt_runtime_us", cpu["realtimeRuntime"])
        if cpu.get("idle") is not None:
            write(directory, "cpu.idle", cpu["idle"])

    def _apply_blkio(self, blkio: dict) -> None:
        directory = self._dir("blkio", "blockIO")
        # CFQ (gone since 5.0) had blkio.weight; BFQ has blkio.bfq.weight.
        bfq = not exists(directory, "blkio.weight") and exists(directory, "blkio.bfq.weight")
        weight_file = "blkio.bfq.weight" if bfq else "blkio.weight"
        if blkio.get("weight"):
            _write_blkio(directory, weight_file, blkio["weight"], "blockIO.weight")
        if blkio.get("leafWeight"):
            _write_blkio(directory, "blkio.leaf_weight", blkio["leafWeight"], "blockIO.leafWeight")
        for device in blkio.get("weightDevice") or []:
            numbers = f"{device['major']}:{device['minor']}"
            if device.get("weight"):
                _write_blkio(directory, weight_file + "_device", f"{numbers} {device['weight']}",
                             "blockIO.weightDevice")
            if device.get("leafWeight"):
                _write_blkio(directory, "blkio.leaf_weight_device", f"{numbers} {device['leafWeight']}",
                             "blockIO.weightDevice")
        for key, name in _THROTTLE_FILES:
            for device in blkio.get(key) or []:
                _write_blkio(directory, name, f"{device['major']}:{device['minor']} {device['rate']}",
                             f"blockIO.{key}")

    def _apply_hugepages(self, page: dict) -> None:
        size, limit = page["pageSize"], page["limit"]
        if "hugetlb" in self.paths:
            directory, name = self.paths["hugetlb"], f"hugetlb.{size}.limit_in_bytes"
        elif "" in self.paths:
            # A hybrid host may offer hugetlb only on its cgroup2 tree (this one does).
            directory, name = self.paths[""], f"hugetlb.{size}.max"
        else:
            raise InvalidResource("linux.resources.hugepageLimits: this host has no hugetlb cgroup controller",
                                  errno.EOPNOTSUPP)
        if not exists(directory, name):
            raise InvalidResource(f"linux.resources.hugepageLimits: page size {size} is not supported here "
                                  f"({directory}/{name} does not exist)", errno.EOPNOTSUPP)
        write(directory, name, limit)
        # Also cap reservations (rsvd), or a mapping could reserve past the limit and fault later.
        rsvd = name.replace(f"{size}.", f"{size}.rsvd.")
        if exists(directory, rsvd):
            write(directory, rsvd, limit)

    def _apply_network(self, network: dict) -> None:
        if network.get("classID") is not None:
            write(self._dir("net_cls", "network.classID"), "net_cls.classid", network["classID"])
        for entry in network.get("priorities") or []:
            write(self._dir("net_prio", "network.priorities"), "net_prio.ifpriomap",
                  f"{entry['name']} {entry['priority']}")

    def _apply_unified(self, unified: dict) -> None:
        directory = self.paths.get("")
        if directory is None:
            raise InvalidResource("linux.resources.unified needs cgroup v2, and this host has only cgroup v1 "
                                  "hierarchies", errno.EOPNOTSUPP)
        for name, value in unified.items():
            if not exists(directory, name):
                raise InvalidResource(f"linux.resources.unified[{name!r}]: the cgroup2 tree of this hybrid host "
                                      f"has no such file in {directory} (its controllers: "
                                      f"{_controllers(directory) or 'none'})", errno.EOPNOTSUPP)
            write(directory, name, value)

    # -- freezer ---------------------------------------------------------------------------
    def can_freeze(self) -> bool:
        return "freezer" in self.paths and os.path.isdir(self.paths["freezer"])

    def freeze(self) -> None:
        """FROZEN, and wait until the kernel says so (FREEZING while tasks are caught)."""
        directory = self._freezer()
        deadline = time.monotonic() + _FREEZE_TIMEOUT
        attempt = 0
        while True:
            write(directory, "freezer.state", "FROZEN")
            state = read(directory, "freezer.state")
            if state == "FROZEN":
                return
            if time.monotonic() >= deadline:
                write(directory, "freezer.state", "THAWED")  # do not leave it half frozen
                raise CgroupError(errno.EBUSY, f"freezing {directory}: freezer.state still {state} after "
                                               f"{_FREEZE_TIMEOUT:g} s")
            attempt += 1
            if attempt % 50 == 0:
                # A thaw now and then lets a task stuck between fork and freeze finish
                # (runc's remedy for cgroups that stay FREEZING).
                write(directory, "freezer.state", "THAWED")
            time.sleep(0.001 * min(attempt, 10))

    def thaw(self) -> None:
        write(self._freezer(), "freezer.state", "THAWED")

    def is_frozen(self) -> bool:
        """Frozen by us (not merely through a frozen ancestor, as runc reports it)."""
        directory = self.paths.get("freezer")
        if directory is None:
            return False
        for _ in range(100):
            try:
                state = read(directory, "freezer.state")
            except OSError:
                return False
            if state != "FREEZING":
                break
            time.sleep(0.001)  # settling; FREEZING is transient
        if state == "THAWED":
            return False
        try:
            return read(directory, "freezer.self_freezing") != "0"
        except OSError:
            return True  # kernels without self_freezing

    def _freezer(self) -> str:
        directory = self.paths.get("freezer")
        if directory is None:
            raise CgroupError(errno.EOPNOTSUPP, "cannot pause: this host has no freezer cgroup hierarchy")
        return directory

    # -- statistics --------------------------------------------------------------------------
    def oom_kill_count(self) -> int:
        directory = self.paths.get("memory")
        return read_keyed(directory, "memory.oom_control").get("oom_kill", 0) if directory else 0

    def stats(self) -> dict:
        """Same shape as V2Manager.stats; a limit of None means unlimited."""
        memory, cpuacct, cpu, pids = (self.paths.get(c) for c in ("memory", "cpuacct", "cpu", "pids"))
        result: dict = {"memory": {}, "cpu": {}, "pids": {}}
        if memory:
            limit = read_int(memory, "memory.limit_in_bytes", None)
            memsw_usage = read_int(memory, "memory.memsw.usage_in_bytes", None)
            usage = read_int(memory, "memory.usage_in_bytes")
            result["memory"] = {
                "usage": usage,
                "max_usage": read_int(memory, "memory.max_usage_in_bytes"),
                "limit": None if limit is None or limit >= UNLIMITED_BYTES else limit,
                "swap_usage": None if memsw_usage is None else max(memsw_usage - (usage or 0), 0),
                "oom_kill": self.oom_kill_count(),
                "stats": read_keyed(memory, "memory.stat"),
            }
        if cpuacct:
            ticks = read_keyed(cpuacct, "cpuacct.stat")
            tick_ns = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
            result["cpu"] = {"usage_ns": read_int(cpuacct, "cpuacct.usage"),
                             "user_ns": ticks.get("user", 0) * tick_ns,
                             "system_ns": ticks.get("system", 0) * tick_ns}
        if cpu:
            throttling = read_keyed(cpu, "cpu.stat")
            result["cpu"].update(periods=throttling.get("nr_periods", 0),
                                 throttled_periods=throttling.get("nr_throttled", 0),
                                 throttled_ns=throttling.get("throttled_time", 0))
        if pids:
            result["pids"] = {"current": read_int(pids, "pids.current"), "limit": read_int(pids, "pids.max", None)}
        return result


def _has_values(section: dict | None) -> bool:
    """Whether a section asks for anything (an empty one needs no hierarchy)."""
    return bool(section) and any(value is not None and value is not False for value in section.values())


def _write_memory(directory: str, name: str, value: int) -> None:
    """A memory limit; EBUSY from the kernel means the cgroup already uses more."""
    try:
        write(directory, name, value)
    except CgroupError as e:
        if e.errno != errno.EBUSY:
            raise
        usage = read_int(directory, name.replace("limit_in_bytes", "usage_in_bytes"), None)
        raise CgroupError(e.errno, f"{e.strerror} (the cgroup already uses {usage} bytes, more than the new "
                                   "limit)") from None


def _write_blkio(directory: str, name: str, value: str | int, field: str) -> None:
    if not exists(directory, name):
        raise InvalidResource(f"linux.resources.{field}: {directory}/{name} does not exist (no I/O scheduler "
                              "here supports it)", errno.EOPNOTSUPP)
    write(directory, name, value)


def _controllers(directory: str) -> str:
    try:
        return read(directory, "cgroup.controllers")
    except OSError:
        return ""


def _inherit_cpuset(directory: str) -> None:
    """A new v1 cpuset cgroup starts with empty cpus and mems, where no task may run:
    fill each empty level from its parent, top down."""
    chain = []
    current = directory
    while exists(current, "cpuset.cpus") and exists(os.path.dirname(current), "cpuset.cpus"):
        chain.append(current)
        current = os.path.dirname(current)
    for path in reversed(chain):
        parent = os.path.dirname(path)
        for name in ("cpuset.cpus", "cpuset.mems"):
            if not read(path, name):
                write(path, name, read(parent, name))
