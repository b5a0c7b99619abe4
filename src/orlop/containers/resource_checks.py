"""A create or update request's resource limits checked as dockerd checks them (moby's
verifyPlatformContainerResources): a wrong value is refused with Docker's message, a limit
this host cannot apply is discarded with Docker's warning (returned, for the answer's
"Warnings"), and what dockerd fills in at create (swap twice the memory) is filled in."""

from __future__ import annotations

from orlop.containers.host_support import HostSupport, parse_list, usable_cpus
from orlop.errors import InvalidParameter

MIN_MEMORY = 6 << 20  # dockerd's floor: room for a container's start-up
MIN_CPU_SHARES, MAX_CPU_SHARES = 2, 262144


def check(hc: dict, host: HostSupport, *, update: bool = False) -> list[str]:
    """Check the resource fields of `hc` (a HostConfig, or an update's resources) in place;
    the warnings to report. Raises InvalidParameter with Docker's message."""
    warnings: list[str] = []
    if hc.get("MemorySwappiness") == -1:
        hc["MemorySwappiness"] = None  # -1 is the CLI's "not set"
    _check_memory(hc, host, update, warnings)
    _check_cpu(hc, host, warnings)
    _check_cpuset(hc, host, warnings)
    weight = hc.get("BlkioWeight") or 0
    if weight > 0 and not host.blkio_weight:
        warnings.append("Your kernel does not support Block I/O weight or the cgroup is not mounted. "
                        "Weight discarded.")
        hc["BlkioWeight"] = 0
    elif weight > 0 and not 10 <= weight <= 1000:
        raise InvalidParameter("Range of blkio weight is from 10 to 1000")
    if hc.get("IOMaximumBandwidth") or hc.get("IOMaximumIOps"):
        raise InvalidParameter("Invalid QoS settings: linux does not support Maximum IO Bandwidth or Maximum IO IOps")
    if (hc.get("ShmSize") or 0) < 0:
        raise InvalidParameter("SHM size can not be less than 0")
    return warnings


def _check_memory(hc: dict, host: HostSupport, update: bool, warnings: list[str]) -> None:
    memory = hc.get("Memory") or 0
    if memory != 0 and memory < MIN_MEMORY:
        raise InvalidParameter("Minimum memory limit allowed is 6MB")
    if memory > 0 and not host.memory:
        warnings.append("Your kernel does not support memory limit capabilities or the cgroup is not mounted. "
                        "Limitation discarded.")
        hc["Memory"], hc["MemorySwap"], memory = 0, -1, 0
    swap = hc.get("MemorySwap") or 0
    if memory > 0 and swap != -1 and not host.swap:
        warnings.append("Your kernel does not support swap limit capabilities or the cgroup is not mounted. "
                        "Memory limited without swap.")
        hc["MemorySwap"] = swap = -1
    if memory > 0 and swap > 0 and swap < memory:
        raise InvalidParameter("Minimum memoryswap limit should be larger than memory limit, see usage")
    if memory == 0 and swap > 0 and not update:
        raise InvalidParameter("You should always set the Memory limit when using Memoryswap limit, see usage")
    swappiness = hc.get("MemorySwappiness")
    if swappiness is not None and not host.swappiness:
        warnings.append("Your kernel does not support memory swappiness capabilities or the cgroup is not mounted. "
                        "Memory swappiness discarded.")
        hc["MemorySwappiness"] = swappiness = None
    if swappiness is not None and not 0 <= swappiness <= 100:
        raise InvalidParameter(f"Invalid value: {swappiness}, valid memory swappiness range is 0-100")
    reservation = hc.get("MemoryReservation") or 0
    if reservation > 0 and not host.reservation:
        warnings.append("Your kernel does not support memory soft limit capabilities or the cgroup is not mounted. "
                        "Limitation discarded.")
        hc["MemoryReservation"] = reservation = 0
    if 0 < reservation < MIN_MEMORY:
        raise InvalidParameter("Minimum memory reservation allowed is 6MB")
    if memory > 0 and reservation > 0 and memory < reservation:
        raise InvalidParameter("Minimum memory limit can not be less than memory reservation limit, see usage")
    if hc.get("OomKillDisable") and not host.oom_kill_disable:
        warnings.append("Your kernel does not support OomKillDisable. OomKillDisable discarded.")
        hc["OomKillDisable"] = False
    if hc.get("OomKillDisable") and memory == 0:
        warnings.append("OOM killer is disabled for the container, but no memory limit is set, this can result in "
                        "the system running out of resources.")
    if (hc.get("PidsLimit") or 0) > 0 and not host.pids:
        warnings.append("Your kernel does not support PIDs limit capabilities or the cgroup is not mounted. "
                        "PIDs limit discarded.")
        hc["PidsLimit"] = None


def _check_cpu(hc: dict, host: HostSupport, warnings: list[str]) -> None:
    nano = hc.get("NanoCpus") or 0
    if nano > 0 and (hc.get("CpuPeriod") or 0) > 0:
        raise InvalidParameter("Conflicting options: Nano CPUs and CPU Period cannot both be set")
    if nano > 0 and (hc.get("CpuQuota") or 0) > 0:
        raise InvalidParameter("Conflicting options: Nano CPUs and CPU Quota cannot both be set")
    if nano > 0 and not host.cpu_cfs:
        raise InvalidParameter("NanoCPUs can not be set, as your kernel does not support CPU CFS scheduler or the "
                               "cgroup is not mounted")
    cpus = usable_cpus()
    # Below 0.01 the quota would be under the kernel's 1 ms minimum.
    if nano < 0 or nano > cpus * 1_000_000_000 or 0 < nano < 10_000_000:
        raise InvalidParameter(f"Range of CPUs is from 0.01 to {cpus}.00, as there are only {cpus} CPUs available")
    shares = hc.get("CpuShares") or 0
    if shares < 0:
        raise InvalidParameter("invalid CPU shares: must not be negative")
    if shares > 0 and not host.cpu_shares:
        warnings.append("Your kernel does not support CPU shares or the cgroup is not mounted. Shares discarded.")
        hc["CpuShares"] = 0
    period, quota = hc.get("CpuPeriod") or 0, hc.get("CpuQuota") or 0
    if (period or quota) and not host.cpu_cfs:
        warnings.append("Your kernel does not support CPU CFS scheduler. CPU period/quota discarded.")
        hc["CpuPeriod"] = hc["CpuQuota"] = period = quota = 0
    if period and not 1000 <= period <= 1_000_000:
        raise InvalidParameter("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)")
    if 0 < quota < 1000:
        raise InvalidParameter("CPU cfs quota can not be less than 1ms (i.e. 1000)")
    rt_period, rt_runtime = hc.get("CpuRealtimePeriod") or 0, hc.get("CpuRealtimeRuntime") or 0
    if rt_period > 0 and not host.cpu_realtime:
        raise InvalidParameter("Your kernel does not support cgroup cpu real-time period")
    if rt_runtime > 0 and not host.cpu_realtime:
        raise InvalidParameter("Your kernel does not support cgroup cpu real-time runtime")
    if rt_period and rt_runtime and rt_runtime > rt_period:
        raise InvalidParameter("cpu real-time runtime cannot be higher than cpu real-time period")
    if (hc.get("CpuPercent") or 0) > 0:
        warnings.append("linux does not support CPU percent. Percent discarded.")
        hc["CpuPercent"] = 0


def _check_cpuset(hc: dict, host: HostSupport, warnings: list[str]) -> None:
    cpus, mems = hc.get("CpusetCpus") or "", hc.get("CpusetMems") or ""
    if (cpus or mems) and not host.cpuset:
        warnings.append("Your kernel does not support cpuset or the cgroup is not mounted. Cpuset discarded.")
        hc["CpusetCpus"] = hc["CpusetMems"] = ""
        return
    for value, offered, what, noun in ((cpus, host.cpus, "cpus", "CPUs"), (mems, host.mems, "mems", "memory nodes")):
        try:
            wanted = parse_list(value)
        except ValueError as e:
            raise InvalidParameter(f"Invalid value {value} for cpuset {what}: {e}") from None
        if wanted and not wanted <= parse_list(offered):
            raise InvalidParameter(f"Requested {noun} are not available - requested {value}, available: {offered}")


def adapt_for_create(hc: dict) -> None:
    """What dockerd fills in at create (adaptContainerSettings and its create route): swap twice
    the memory when only memory is given, CPU shares clamped to the kernel's range, a pids limit
    of 0 or below meaning none (null), kernel memory dropped (gone from the API in 1.42)."""
    if (hc.get("PidsLimit") or 0) <= 0:
        hc["PidsLimit"] = None
    hc["KernelMemory"] = 0
    shares = hc.get("CpuShares") or 0
    if shares > 0:
        hc["CpuShares"] = min(max(shares, MIN_CPU_SHARES), MAX_CPU_SHARES)
    if (hc.get("Memory") or 0) > 0 and not hc.get("MemorySwap"):
        hc["MemorySwap"] = hc["Memory"] * 2
