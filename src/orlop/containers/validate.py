"""A create request checked as dockerd checks it, so that a bad one is refused at create
with a 400 that names the field, instead of failing later at start.

The JSON shapes follow the Go types the Engine API decodes into: Cmd and Entrypoint accept a
string for a one-element list (strslice), numbers must be integers, Labels a string map.
"""

from __future__ import annotations

import re
import signal

from orlop.errors import InvalidParameter

VOLUME_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
BIND_OPTIONS = {"ro", "rw", "z", "Z", "nocopy", "private", "rprivate", "shared", "rshared", "slave", "rslave"}
INT_FIELDS = ("Memory", "MemorySwap", "MemoryReservation", "NanoCpus", "CpuShares", "CpuPeriod", "CpuQuota",
              "CpuRealtimePeriod", "CpuRealtimeRuntime", "CpuCount", "CpuPercent", "IOMaximumIOps",
              "IOMaximumBandwidth", "BlkioWeight", "OomScoreAdj", "PidsLimit", "ShmSize", "MemorySwappiness",
              "KernelMemory")


def _type_error(field: str, value, want: str) -> InvalidParameter:
    got = {bool: "bool", int: "number", float: "number", str: "string", list: "array", dict: "object"}.get(
        type(value), type(value).__name__)
    return InvalidParameter(f"json: cannot unmarshal {got} into Go struct field {field} of type {want}")


def _strslice(config: dict, key: str) -> None:
    value = config.get(key)
    if value is None:
        return
    if isinstance(value, str):
        config[key] = [value]
    elif not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _type_error(f"Config.{key}", value, "[]string")


def _string_list(config: dict, key: str, where: str) -> None:
    value = config.get(key)
    if value is not None and (not isinstance(value, list) or not all(isinstance(v, str) for v in value)):
        raise _type_error(f"{where}.{key}", value, "[]string")


def _string_map(config: dict, key: str, where: str) -> None:
    value = config.get(key)
    if value is not None and (not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values())):
        raise _type_error(f"{where}.{key}", value, "map[string]string")


def signal_number(value: str | int | None, default: int) -> int:
    """A signal as Docker takes it: a number, "TERM" or "SIGTERM"."""
    if value in (None, ""):
        return default
    text = str(value).upper()
    if text.isdigit():
        number = int(text)
        if 0 < number < signal.NSIG:
            return number
        raise InvalidParameter(f"Invalid signal: {value}")
    try:
        return int(getattr(signal, text if text.startswith("SIG") else "SIG" + text))
    except AttributeError:
        raise InvalidParameter(f"Invalid signal: {value}") from None


def config(body: dict) -> None:
    """Config (the request's top level), normalised in place."""
    _strslice(body, "Cmd")
    _strslice(body, "Entrypoint")
    _string_list(body, "Env", "Config")
    _string_map(body, "Labels", "Config")
    for entry in body.get("Env") or []:  # a bare NAME is allowed: it unsets NAME
        if not entry or entry.startswith("="):
            raise InvalidParameter(f"invalid environment variable: {entry!r} (expected NAME=value or NAME)")
    working_dir = body.get("WorkingDir")
    if working_dir and not isinstance(working_dir, str):
        raise _type_error("Config.WorkingDir", working_dir, "string")
    if working_dir and not working_dir.startswith("/"):
        raise InvalidParameter(f"the working directory '{working_dir}' is invalid, it needs to be an absolute path")
    if body.get("StopSignal"):
        signal_number(body["StopSignal"], signal.SIGTERM)
    timeout = body.get("StopTimeout")
    if timeout is not None and not isinstance(timeout, int):
        raise _type_error("Config.StopTimeout", timeout, "int")


def parse_bind(spec: str) -> tuple[str, str, list[str]]:
    """`/host:/container[:opts]` → (source, destination, options)."""
    parts = spec.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise InvalidParameter(f"invalid volume specification: '{spec}'")
    source, destination = parts[0], parts[1]
    options = [o for o in parts[2].split(",") if o] if len(parts) == 3 else []
    if not source.startswith("/") and not VOLUME_NAME.match(source):
        raise InvalidParameter(f"invalid volume specification: '{spec}': \"{source}\" includes invalid characters "
                               f"for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you "
                               f"intended to pass a host directory, use absolute path")
    if not destination.startswith("/"):
        raise InvalidParameter(f"invalid volume specification: '{spec}': invalid mount config for type \"bind\": "
                               f"invalid mount path: '{destination}' mount path must be absolute")
    for option in options:
        if option not in BIND_OPTIONS:
            raise InvalidParameter(f"invalid mode: {option}")
    return source, destination, options


def host_config(hc: dict) -> None:
    for key in INT_FIELDS:
        value = hc.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise _type_error(f"HostConfig.{key}", value, "int64")
    for key in ("Binds", "CapAdd", "CapDrop", "Dns", "DnsSearch", "DnsOptions", "ExtraHosts", "SecurityOpt"):
        _string_list(hc, key, "HostConfig")
    _string_map(hc, "Tmpfs", "HostConfig")
    _string_list(hc, "Links", "HostConfig")
    for entry in hc.get("ExtraHosts") or []:
        host, sep, address = entry.partition(":")
        if not sep or not host or not address:
            raise InvalidParameter(f"invalid extra host {entry!r}: expected host:ip")
    if hc.get("StorageOpt"):  # what overlay2 on anything but xfs with pquota answers
        raise InvalidParameter("--storage-opt is supported only for overlay over xfs with 'pquota' mount option")
    for request in hc.get("DeviceRequests") or []:  # no GPU (or other) device driver here
        capabilities = " ".join("[" + " ".join(c) + "]" for c in request.get("Capabilities") or [])
        raise InvalidParameter(f'could not select device driver "{request.get("Driver") or ""}" with '
                               f"capabilities: [{capabilities}]")
    # The resource limits are checked against what this host supports: resource_checks.check
    adj = hc.get("OomScoreAdj") or 0
    if not -1000 <= adj <= 1000:
        raise InvalidParameter(f"Invalid value {adj}, range for oom score adj is [-1000, 1000]")
    for bind in hc.get("Binds") or []:
        parse_bind(bind)
    for ulimit in hc.get("Ulimits") or []:
        if not isinstance(ulimit, dict) or not isinstance(ulimit.get("Soft", 0), int) or \
                not isinstance(ulimit.get("Hard", 0), int):
            raise InvalidParameter(f"invalid ulimit: {ulimit!r} (expected {{\"Name\", \"Soft\", \"Hard\"}})")
        if ulimit.get("Soft", 0) > ulimit.get("Hard", 0):
            raise InvalidParameter(f"ulimit soft limit must be less than or equal to hard limit: "
                                   f"{ulimit.get('Soft')} > {ulimit.get('Hard')}")
