"""A running container's resource usage in the shape of Docker's stats API
(`GET /containers/{id}/stats`), read from its cgroup (v1, hybrid or v2) and its network
namespace.

The cgroup is found from /proc/<init pid>/cgroup, so it does not matter which runtime
(orlop-runtime, runc, crun) made it or where it put it.
"""

from __future__ import annotations

import contextlib
import os

from orlop.linux.cgroups import load_manager
from orlop.linux.cgroups.common import read_hierarchies

_CLK_NS = 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def cgroup_paths(pid: int) -> dict[str, str]:
    """{controller: directory} of a process's cgroups; "" is its cgroup2 directory, given
    only on a pure v2 host (on a hybrid host the v1 controllers hold the figures)."""
    hierarchies = read_hierarchies()
    paths: dict[str, str] = {}
    unified = None
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            if controllers == "":
                unified = path
                continue
            for controller in controllers.split(","):
                mountpoint = hierarchies.v1.get(controller)
                if mountpoint:
                    paths[controller] = mountpoint + path
    if not paths and unified is not None and hierarchies.v2_mount:
        paths[""] = hierarchies.v2_mount + unified
    return paths


def system_cpu_ns() -> int:
    """The host's total CPU time (all CPUs, all states) in ns: the docker CLI's denominator."""
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:8]
    return sum(int(v) for v in fields) * _CLK_NS


def network(pid: int) -> dict[str, dict[str, int]]:
    """Counters of each interface (but lo) of the process's network namespace."""
    names = ("rx_bytes", "rx_packets", "rx_errors", "rx_dropped", None, None, None, None,
             "tx_bytes", "tx_packets", "tx_errors", "tx_dropped")
    out = {}
    with contextlib.suppress(OSError), open(f"/proc/{pid}/net/dev") as f:
        for line in f.readlines()[2:]:
            name, _, counters = line.partition(":")
            name = name.strip()
            if name == "lo":
                continue
            values = [int(v) for v in counters.split()]
            out[name] = {key: values[i] for i, key in enumerate(names) if key}
    return out


def _blkio(paths: dict[str, str]) -> list[dict]:
    entries: list[dict] = []
    if "blkio" in paths:
        name = os.path.join(paths["blkio"], "blkio.throttle.io_service_bytes_recursive")
        with contextlib.suppress(OSError), open(name) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 3 and ":" in parts[0]:
                    major, minor = parts[0].split(":")
                    entries.append({"major": int(major), "minor": int(minor), "op": parts[1],
                                    "value": int(parts[2])})
    elif "" in paths:
        with contextlib.suppress(OSError), open(os.path.join(paths[""], "io.stat")) as f:
            for line in f:
                device, *pairs = line.split()
                major, minor = device.split(":")
                values = dict(pair.split("=", 1) for pair in pairs)
                for key, op in (("rbytes", "read"), ("wbytes", "write")):
                    entries.append({"major": int(major), "minor": int(minor), "op": op,
                                    "value": int(values.get(key, 0))})
    return entries


def _percpu(paths: dict[str, str]) -> list[int] | None:
    if "cpuacct" not in paths:
        return None
    with contextlib.suppress(OSError), open(os.path.join(paths["cpuacct"], "cpuacct.usage_percpu")) as f:
        return [int(v) for v in f.read().split()]
    return None


def _host_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def sample(pid: int) -> dict:
    """cpu_stats, memory_stats, pids_stats, blkio_stats and networks of a running container
    whose init is `pid` (Docker's field names; precpu_stats is the caller's)."""
    paths = cgroup_paths(pid)
    figures = load_manager(paths).stats() if paths else {"memory": {}, "cpu": {}, "pids": {}}
    cpu, memory, pids = figures["cpu"], figures["memory"], figures["pids"]
    cpu_usage = {"total_usage": cpu.get("usage_ns") or 0, "usage_in_kernelmode": cpu.get("system_ns") or 0,
                 "usage_in_usermode": cpu.get("user_ns") or 0}
    percpu = _percpu(paths)
    if percpu:
        cpu_usage["percpu_usage"] = percpu
    memory_stats = {}
    if memory.get("usage") is not None:
        memory_stats = {"usage": memory["usage"], "stats": memory.get("stats") or {},
                        "limit": memory.get("limit") or _host_memory()}
        if memory.get("max_usage") is not None:
            memory_stats["max_usage"] = memory["max_usage"]
    pids_stats = {}
    if pids.get("current") is not None:
        pids_stats = {"current": pids["current"]}
        if pids.get("limit") is not None:
            pids_stats["limit"] = pids["limit"]
    return {
        "pids_stats": pids_stats,
        "blkio_stats": {"io_service_bytes_recursive": _blkio(paths), "io_serviced_recursive": None,
                        "io_queue_recursive": None, "io_service_time_recursive": None,
                        "io_wait_time_recursive": None, "io_merged_recursive": None, "io_time_recursive": None,
                        "sectors_recursive": None},
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": {"cpu_usage": cpu_usage, "system_cpu_usage": system_cpu_ns(),
                      "online_cpus": os.cpu_count() or 1,
                      "throttling_data": {"periods": cpu.get("periods") or 0,
                                          "throttled_periods": cpu.get("throttled_periods") or 0,
                                          "throttled_time": cpu.get("throttled_ns") or 0}},
        "memory_stats": memory_stats,
        "networks": network(pid),
    }


EMPTY_CPU = {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
             "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}}


def empty() -> dict:
    """What dockerd reports for a container that is not running."""
    return {"pids_stats": {}, "blkio_stats": {}, "num_procs": 0, "storage_stats": {}, "cpu_stats": EMPTY_CPU,
            "memory_stats": {}}
