"""Checks of OCI linux.resources before anything is written, and the v1 -> v2 conversions.

Everything is checked up front so that a wrong value is reported by its field
name (linux.resources.memory.limit: ...) and leaves no half-configured cgroup.
As in runc, 0 means "not set" for limits and shares, and -1 means unlimited.
"""

from __future__ import annotations

from orlop.linux.cgroups.common import InvalidResource

UNLIMITED = -1
MIN_SHARES, MAX_SHARES = 2, 262144          # the kernel's range for v1 cpu.shares
MIN_BLKIO_WEIGHT, MAX_BLKIO_WEIGHT = 10, 1000
_PAGE_SIZE_UNITS = ("KB", "MB", "GB", "TB", "PB")


def shares_to_weight(shares: int) -> int:
    """v1 cpu.shares [2, 262144] -> v2 cpu.weight [1, 10000], the mapping runc uses."""
    return 1 + ((shares - 2) * 9999) // 262142


def blkio_weight_to_io_weight(weight: int) -> int:
    """v1 blkio.weight [10, 1000] -> v2 io.weight [1, 10000], the mapping runc uses."""
    return 1 + (weight - 10) * 9999 // 990


def swap_to_v2(swap: int | None, limit: int | None) -> int | str | None:
    """OCI memory.swap counts memory+swap (v1's memsw); v2's memory.swap.max counts
    swap alone. None: leave memory.swap.max alone."""
    if not swap:
        # An unlimited memory with swap unset means both unlimited (runc's v1 compatibility).
        return "max" if limit == UNLIMITED else None
    if swap == UNLIMITED:
        return "max"
    return swap - (limit or 0)  # validate() made sure limit is set and not above swap


def validate(resources: dict) -> None:
    """Raise InvalidResource naming the first wrong field; unknown fields are ignored."""
    if not isinstance(resources, dict):
        raise InvalidResource(f"linux.resources: expected an object, got {resources!r}")
    _check_memory(_section(resources, "memory"))
    _check_cpu(_section(resources, "cpu"))
    pids = _section(resources, "pids")
    if pids.get("limit") is not None:
        _integer("pids.limit", pids["limit"])
    _check_blkio(_section(resources, "blockIO"))
    _check_hugepages(resources.get("hugepageLimits"))
    _check_network(_section(resources, "network"))
    _check_rdma(resources.get("rdma"))
    _check_unified(resources.get("unified"))
    # devices are checked where they are parsed: devices.parse_rules


def _section(resources: dict, name: str) -> dict:
    value = resources.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidResource(f"linux.resources.{name}: expected an object, got {value!r}")
    return value


def _integer(field: str, value: object, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidResource(f"linux.resources.{field}: expected an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise InvalidResource(f"linux.resources.{field}: {value} is out of range (minimum {minimum})")
    return value


def _limit(field: str, value: object) -> int | None:
    """A byte count: a positive number, -1 for unlimited, 0 or absent for "not set"."""
    if value is None:
        return None
    number = _integer(field, value)
    if number < UNLIMITED:
        raise InvalidResource(f"linux.resources.{field}: {number} is not a limit "
                              "(use a positive number of bytes, or -1 for unlimited)")
    return number or None


def _check_memory(memory: dict) -> None:
    limit = _limit("memory.limit", memory.get("limit"))
    swap = _limit("memory.swap", memory.get("swap"))
    for name in ("reservation", "kernel", "kernelTCP"):
        _limit(f"memory.{name}", memory.get(name))
    if swap and swap != UNLIMITED:
        if not limit or limit == UNLIMITED:
            raise InvalidResource(f"linux.resources.memory.swap: {swap} needs a memory.limit too "
                                  "(swap is the memory+swap limit)")
        if swap < limit:
            raise InvalidResource(f"linux.resources.memory.swap: {swap} is below memory.limit {limit} "
                                  "(swap is the memory+swap limit, so it must be >= the memory limit)")
    swappiness = memory.get("swappiness")
    if swappiness is not None and swappiness != UNLIMITED:  # -1: "not set", as runc reads it
        if _integer("memory.swappiness", swappiness) > 100 or swappiness < 0:
            raise InvalidResource(f"linux.resources.memory.swappiness: {swappiness} is out of range 0-100")
    if not isinstance(memory.get("disableOOMKiller", False), bool):
        raise InvalidResource(f"linux.resources.memory.disableOOMKiller: expected true or false, "
                              f"got {memory['disableOOMKiller']!r}")


def _check_cpu(cpu: dict) -> None:
    shares = cpu.get("shares")
    if shares and not MIN_SHARES <= _integer("cpu.shares", shares) <= MAX_SHARES:
        raise InvalidResource(f"linux.resources.cpu.shares: {shares} is out of range {MIN_SHARES}-{MAX_SHARES}")
    if cpu.get("quota") is not None:
        _integer("cpu.quota", cpu["quota"], UNLIMITED)
    for name in ("period", "burst", "realtimePeriod"):
        if cpu.get(name) is not None:
            _integer(f"cpu.{name}", cpu[name], 0)
    if cpu.get("realtimeRuntime") is not None:
        _integer("cpu.realtimeRuntime", cpu["realtimeRuntime"], UNLIMITED)
    if cpu.get("idle") is not None and _integer("cpu.idle", cpu["idle"]) not in (0, 1):
        raise InvalidResource(f"linux.resources.cpu.idle: {cpu['idle']} must be 0 or 1")
    for name in ("cpus", "mems"):
        value = cpu.get(name)
        if value is not None and (not isinstance(value, str) or value.strip(" 0123456789,-")):
            raise InvalidResource(f"linux.resources.cpu.{name}: {value!r} is not a list like \"0-3,6\"")


def _check_blkio(blkio: dict) -> None:
    for name in ("weight", "leafWeight"):
        _blkio_weight(f"blockIO.{name}", blkio.get(name))
    for i, device in enumerate(_list(blkio, "weightDevice")):
        _device_numbers(f"blockIO.weightDevice[{i}]", device)
        for name in ("weight", "leafWeight"):
            _blkio_weight(f"blockIO.weightDevice[{i}].{name}", device.get(name))
    for key in ("throttleReadBpsDevice", "throttleWriteBpsDevice", "throttleReadIOPSDevice",
                "throttleWriteIOPSDevice"):
        for i, device in enumerate(_list(blkio, key)):
            _device_numbers(f"blockIO.{key}[{i}]", device)
            _integer(f"blockIO.{key}[{i}].rate", device.get("rate"), 0)


def _blkio_weight(field: str, value: object) -> None:
    if value and not MIN_BLKIO_WEIGHT <= _integer(field, value) <= MAX_BLKIO_WEIGHT:
        raise InvalidResource(f"linux.resources.{field}: {value} is out of range "
                              f"{MIN_BLKIO_WEIGHT}-{MAX_BLKIO_WEIGHT}")


def _list(section: dict, key: str) -> list:
    value = section.get(key) or []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise InvalidResource(f"linux.resources.blockIO.{key}: expected a list of objects")
    return value


def _device_numbers(field: str, device: dict) -> None:
    _integer(f"{field}.major", device.get("major"), 0)
    _integer(f"{field}.minor", device.get("minor"), 0)


def _check_hugepages(limits: object) -> None:
    if limits is None:
        return
    if not isinstance(limits, list):
        raise InvalidResource("linux.resources.hugepageLimits: expected a list")
    for i, entry in enumerate(limits):
        size = entry.get("pageSize") if isinstance(entry, dict) else None
        if not isinstance(size, str) or size[-2:] not in _PAGE_SIZE_UNITS or not size[:-2].isdigit():
            raise InvalidResource(f"linux.resources.hugepageLimits[{i}].pageSize: {size!r} is not a page "
                                  "size like \"2MB\" or \"1GB\"")
        _integer(f"hugepageLimits[{i}].limit", entry.get("limit"), 0)


def _check_network(network: dict) -> None:
    if network.get("classID") is not None:
        _integer("network.classID", network["classID"], 0)
    for i, entry in enumerate(network.get("priorities") or []):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise InvalidResource(f"linux.resources.network.priorities[{i}]: expected {{name, priority}}")
        _integer(f"network.priorities[{i}].priority", entry.get("priority"), 0)


def _check_rdma(rdma: object) -> None:
    if rdma is None:
        return
    if not isinstance(rdma, dict):
        raise InvalidResource("linux.resources.rdma: expected an object of device name -> limits")
    for name, limits in rdma.items():
        if not isinstance(limits, dict) or " " in name or not name:
            raise InvalidResource(f"linux.resources.rdma[{name!r}]: expected {{hcaHandles, hcaObjects}}")
        for key in ("hcaHandles", "hcaObjects"):
            if limits.get(key) is not None:
                _integer(f"rdma[{name!r}].{key}", limits[key], 0)


def _check_unified(unified: object) -> None:
    if unified is None:
        return
    if not isinstance(unified, dict):
        raise InvalidResource("linux.resources.unified: expected an object of file name -> value")
    for name, value in unified.items():
        if not isinstance(name, str) or not name or "/" in name or name.startswith(".") or "." not in name:
            raise InvalidResource(f"linux.resources.unified: {name!r} is not a cgroup file name "
                                  "like \"memory.high\"")
        if not isinstance(value, str):
            raise InvalidResource(f"linux.resources.unified[{name!r}]: expected a string, got {value!r}")


def rdma_lines(rdma: dict) -> list[str]:
    """rdma.max lines: "mlx4_0 hca_handle=2 hca_object=2000" (v1 and v2 alike)."""
    lines = []
    for name, limits in rdma.items():
        fields = [name]
        if limits.get("hcaHandles") is not None:
            fields.append(f"hca_handle={limits['hcaHandles']}")
        if limits.get("hcaObjects") is not None:
            fields.append(f"hca_object={limits['hcaObjects']}")
        if len(fields) > 1:
            lines.append(" ".join(fields))
    return lines
