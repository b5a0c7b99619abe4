"""The container's cgroup as the kernel shows it: where it is (from /proc/<pid>/cgroup and
the mounted hierarchies, v1, hybrid or unified), the limits in force (memory, CPU quota,
period and shares or weight, PIDs; the memory limit also as the tightest of its ancestors')
and current usage. Unlimited is None."""

from __future__ import annotations

import os

from orlop.linux.cgroups.common import Hierarchies, read, read_int, read_keyed

V1_UNLIMITED = 1 << 62  # v1 writes "no limit" as ~2^63 rounded down to a page


def locate(cgroup_text: str, found: Hierarchies) -> dict:
    """{mode, paths: {controller: directory}, unified: the cgroup2 directory or None} from the
    text of /proc/<pid>/cgroup and the hierarchies mounted in orlopd's mount namespace."""
    paths: dict[str, str] = {}
    relative: dict[str, str] = {}
    unified = None
    for line in cgroup_text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        for controller in controllers.split(",") if controllers else [""]:
            mountpoint = found.v2_mount if controller == "" else found.v1.get(controller)
            if not mountpoint:
                continue
            root = found.roots.get(controller, "/")
            if root != "/" and (path == root or path.startswith(root + "/")):
                path = path[len(root):] or "/"
            directory = mountpoint.rstrip("/") + path if path != "/" else mountpoint
            relative[controller or "cgroup2"] = path
            if controller == "":
                unified = directory
            else:
                paths[controller] = directory
    return {"mode": found.mode, "version": 2 if found.unified_only else 1, "paths": dict(sorted(paths.items())),
            "unified": unified, "relative": dict(sorted(relative.items()))}


def _limit(value: int | None) -> int | None:
    return None if value is None or value < 0 or value >= V1_UNLIMITED else value


def _tightest(directory: str, name: str, stop: str) -> int | None:
    """The smallest limit in `name` over `directory` and its ancestors up to `stop`."""
    best = None
    current = directory
    while True:
        value = _limit(read_int(current, name, None))
        if value is not None and (best is None or value < best):
            best = value
        if current.rstrip("/") == stop.rstrip("/") or os.path.dirname(current) == current:
            return best
        current = os.path.dirname(current)


def _v2_max(directory: str, name: str) -> int | None:
    """A cgroup2 `max`-or-number file (memory.max, pids.max); None for max or missing."""
    return read_int(directory, name, None)


def v1_figures(paths: dict[str, str], mounts: dict[str, str]) -> tuple[dict, dict]:
    memory, cpu, cpuacct, pids = (paths.get(c) for c in ("memory", "cpu", "cpuacct", "pids"))
    limits: dict = {"memory": None, "memory_effective": None, "memory_swap": None, "memory_reservation": None,
                    "cpu_quota_us": None, "cpu_period_us": None, "cpu_shares": None, "cpu_weight": None,
                    "cpus": None, "cpuset_cpus": None, "pids": None}
    usage: dict = {"memory": None, "memory_peak": None, "cpu_ns": None, "pids": None, "oom_kills": None}
    if memory:
        limits["memory"] = _limit(read_int(memory, "memory.limit_in_bytes", None))
        limits["memory_effective"] = _tightest(memory, "memory.limit_in_bytes", mounts.get("memory", memory))
        limits["memory_swap"] = _limit(read_int(memory, "memory.memsw.limit_in_bytes", None))
        limits["memory_reservation"] = _limit(read_int(memory, "memory.soft_limit_in_bytes", None))
        usage["memory"] = read_int(memory, "memory.usage_in_bytes", None)
        usage["memory_peak"] = read_int(memory, "memory.max_usage_in_bytes", None)
        usage["oom_kills"] = read_keyed(memory, "memory.oom_control").get("oom_kill")
    if cpu:
        limits["cpu_quota_us"] = _limit(read_int(cpu, "cpu.cfs_quota_us", None))
        limits["cpu_period_us"] = read_int(cpu, "cpu.cfs_period_us", None)
        limits["cpu_shares"] = read_int(cpu, "cpu.shares", None)
    if cpuacct:
        usage["cpu_ns"] = read_int(cpuacct, "cpuacct.usage", None)
    if paths.get("cpuset"):
        limits["cpuset_cpus"] = _text(paths["cpuset"], "cpuset.cpus")
    if pids:
        limits["pids"] = read_int(pids, "pids.max", None)
        usage["pids"] = read_int(pids, "pids.current", None)
    _cpus(limits)
    return limits, usage


def v2_figures(directory: str, mount: str) -> tuple[dict, dict]:
    limits: dict = {"memory": _v2_max(directory, "memory.max"),
                    "memory_effective": _tightest(directory, "memory.max", mount),
                    "memory_swap": None, "memory_reservation": _limit(read_int(directory, "memory.low", None)) or None,
                    "cpu_quota_us": None, "cpu_period_us": None, "cpu_shares": None,
                    "cpu_weight": read_int(directory, "cpu.weight", None), "cpus": None,
                    "cpuset_cpus": _text(directory, "cpuset.cpus"), "pids": _v2_max(directory, "pids.max")}
    swap = _v2_max(directory, "memory.swap.max")
    if swap is not None and limits["memory"] is not None:
        limits["memory_swap"] = limits["memory"] + swap  # Docker's MemorySwap: memory plus swap
    cpu_max = _text(directory, "cpu.max")
    if cpu_max:
        quota, _, period = cpu_max.partition(" ")
        limits["cpu_quota_us"] = int(quota) if quota.isdigit() else None
        limits["cpu_period_us"] = int(period) if period.isdigit() else None
    _cpus(limits)
    stat = read_keyed(directory, "cpu.stat")
    usage = {"memory": read_int(directory, "memory.current", None),
             "memory_peak": read_int(directory, "memory.peak", None),
             "cpu_ns": stat["usage_usec"] * 1000 if "usage_usec" in stat else None,
             "pids": read_int(directory, "pids.current", None),
             "oom_kills": read_keyed(directory, "memory.events").get("oom_kill")}
    return limits, usage


def _text(directory: str, name: str) -> str | None:
    try:
        return read(directory, name) or None
    except OSError:
        return None


def _cpus(limits: dict) -> None:
    if limits["cpu_quota_us"] and limits["cpu_period_us"]:
        limits["cpus"] = round(limits["cpu_quota_us"] / limits["cpu_period_us"], 3)


def view(host_pid: int, found: Hierarchies) -> dict:
    with open(f"/proc/{host_pid}/cgroup") as f:
        where = locate(f.read(), found)
    if found.unified_only and where["unified"]:
        limits, usage = v2_figures(where["unified"], found.v2_mount or "/sys/fs/cgroup")
    else:
        limits, usage = v1_figures(where["paths"], found.v1)
    return {**where, "limits": limits, "usage": usage}
