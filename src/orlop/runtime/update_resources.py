"""What `orlop-runtime update` asks for, and what the container's resources become.

Pure functions (no cgroupfs, no state): the update's options (runc's flags or a
resources JSON) -> a LinuxResources delta; the stored linux.resources merged with that
delta, as runc merges them; and the part of the merged resources that must be written
to the cgroup (only the sections the update touches, with their merged values, so that
interdependent files such as memory and memsw are written in the right order).

As in runc, 0 means "not given" for a number (a limit cannot be set to 0), -1 means
unlimited, and an empty string leaves a cpuset alone.
"""

from __future__ import annotations

IGNORED_OPTIONS = ("kernel-memory", "kernel-memory-tcp")  # obsolete: warned about as runc 1.1 does, not applied

_UNSIGNED = (("cpu-burst", "burst"), ("cpu-period", "period"), ("cpu-rt-period", "realtimePeriod"),
             ("cpu-share", "shares"), ("cpu-shares", "shares"))
_SIGNED = (("cpu-quota", "quota"), ("cpu-rt-runtime", "realtimeRuntime"))
_BYTES = (("memory", "limit"), ("memory-swap", "swap"), ("memory-reservation", "reservation"))
_RAM_UNITS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}

# What `update` may change in each section (runc ignores the rest: devices, hugepages,
# network, rdma, throttling).
MEMORY_KEYS = ("limit", "reservation", "swap")
CPU_KEYS = ("shares", "quota", "burst", "period", "realtimeRuntime", "realtimePeriod", "cpus", "mems", "idle")


class UpdateError(ValueError):
    """A wrong option value; the message names the option, as runc's do."""


def ram_in_bytes(text: str) -> int:
    """go-units RAMInBytes: "64m", "1.5g", "512k", "1024", "2GiB", "10 MB" -> bytes (binary units)."""
    lowered = text.strip().lower()
    for suffix in ("b", "i"):
        if lowered.endswith(suffix):
            lowered = lowered[:-1]
    multiplier = 1
    if lowered and lowered[-1] in _RAM_UNITS:
        multiplier = _RAM_UNITS[lowered[-1]]
        lowered = lowered[:-1]
    if lowered.endswith(" "):
        lowered = lowered[:-1]
    parts = lowered.split(".")
    if len(parts) > 2 or not all(part.isdigit() for part in parts):
        raise ValueError(f"invalid size: '{text}'")
    return int(float(lowered) * multiplier)


def delta_from_options(options: dict[str, list[str]], read_resources) -> tuple[dict, list[str]]:
    """The LinuxResources an update asks for, and warnings for ignored options.

    `read_resources(path)` returns the parsed JSON of `--resources` (a file, or "-" for
    stdin); with it every other option is ignored, as in runc.
    """
    def one(name: str) -> str | None:
        values = options.get(name)
        return values[-1] if values else None

    for name, what in (("l3-cache-schema", "Intel RDT/CAT: l3 cache schema"),
                       ("mem-bw-schema", "Intel RDT/MBA: memory bandwidth schema")):
        if one(name):
            raise UpdateError(f"{what} is not enabled")
    path = one("resources")
    if path:
        delta = read_resources(path)
        if not isinstance(delta, dict):
            raise UpdateError(f"--resources {path}: expected a JSON object of linux.resources, got {delta!r}")
        return delta, []
    memory: dict = {}
    cpu: dict = {}
    delta: dict = {}
    if one("blkio-weight"):
        delta["blockIO"] = {"weight": _number(one("blkio-weight"), "blkio-weight", signed=False)}
    if one("cpuset-cpus"):
        cpu["cpus"] = one("cpuset-cpus")
    if one("cpuset-mems"):
        cpu["mems"] = one("cpuset-mems")
    if one("cpu-idle"):
        cpu["idle"] = _number(one("cpu-idle"), "cpu-idle", signed=True)
    for option, key in _UNSIGNED:
        if one(option):
            cpu[key] = _number(one(option), option, signed=False)
    for option, key in _SIGNED:
        if one(option):
            cpu[key] = _number(one(option), option, signed=True)
    for option, key in _BYTES:
        value = one(option)
        if value:
            if value == "-1":
                memory[key] = -1
            else:
                try:
                    memory[key] = ram_in_bytes(value)
                except ValueError as e:
                    raise UpdateError(f"invalid value for {option}: {e}") from None
    if one("pids-limit"):
        delta["pids"] = {"limit": _number(one("pids-limit"), "pids-limit", signed=True)}
    if memory:
        delta["memory"] = memory
    if cpu:
        delta["cpu"] = cpu
    warnings = ["Kernel memory settings are ignored and will be removed"] if any(map(one, IGNORED_OPTIONS)) else []
    return delta, warnings


def _number(text: str, option: str, *, signed: bool) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        kind = "ParseInt" if signed else "ParseUint"
        raise UpdateError(f'invalid value for {option}: strconv.{kind}: parsing "{text}": invalid syntax') from None
    if value < 0 and not signed:
        raise UpdateError(f'invalid value for {option}: strconv.ParseUint: parsing "{text}": invalid syntax')
    return value


def _given(value: object) -> bool:
    """A value the update sets: 0, "" and null leave the current one (runc's reading)."""
    return value is not None and value != 0 and value != ""


def merge(current: dict, delta: dict) -> dict:
    """The container's linux.resources after the update (`current` is left as it was)."""
    merged = {key: (dict(value) if isinstance(value, dict) else value) for key, value in (current or {}).items()}
    memory_delta = _section(delta, "memory")
    memory = {k: memory_delta[k] for k in MEMORY_KEYS if k in memory_delta and _given(memory_delta[k])}
    if memory.get("limit") == -1 and "swap" not in memory:
        memory["swap"] = -1  # unlimited memory and swap unset: both unlimited (runc's v1 compatibility)
    if memory:
        merged["memory"] = {**(merged.get("memory") or {}), **memory}
    cpu_delta = _section(delta, "cpu")
    cpu = {k: cpu_delta[k] for k in CPU_KEYS if k in cpu_delta and (_given(cpu_delta[k]) or k == "idle")
           and cpu_delta[k] is not None}
    if cpu:
        merged["cpu"] = {**(merged.get("cpu") or {}), **cpu}
    weight = _section(delta, "blockIO").get("weight")
    if _given(weight):
        merged["blockIO"] = {**(merged.get("blockIO") or {}), "weight": weight}
    limit = _section(delta, "pids").get("limit")
    if _given(limit):
        merged["pids"] = {"limit": -1 if isinstance(limit, int) and limit < 0 else limit}
    if delta.get("unified"):
        if not isinstance(delta["unified"], dict):
            raise UpdateError(f"linux.resources.unified: expected an object, got {delta['unified']!r}")
        merged["unified"] = {**(merged.get("unified") or {}), **delta["unified"]}
    return merged


def to_apply(merged: dict, delta: dict) -> dict:
    """The sections of `merged` that the update touches: what is written to the cgroup."""
    touched = {}
    for name, keys in (("memory", MEMORY_KEYS), ("cpu", CPU_KEYS)):
        section = _section(delta, name)
        if any(k in section and (_given(section[k]) or (k == "idle" and section[k] is not None)) for k in keys):
            touched[name] = merged[name]
    if _given(_section(delta, "blockIO").get("weight")):
        touched["blockIO"] = {"weight": merged["blockIO"]["weight"]}
    if _given(_section(delta, "pids").get("limit")):
        touched["pids"] = merged["pids"]
    if delta.get("unified"):
        touched["unified"] = dict(delta["unified"])
    return touched


def _section(resources: dict, name: str) -> dict:
    value = resources.get(name) if isinstance(resources, dict) else None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UpdateError(f"linux.resources.{name}: expected an object, got {value!r}")
    return value
