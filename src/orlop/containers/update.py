"""`POST /containers/{id}/update` without the I/O: the request read as dockerd decodes it
(UpdateConfig: the Resources fields plus RestartPolicy), merged into the container's
HostConfig as moby's UpdateContainer merges it (a zero value keeps the current one;
conflicts refused with its messages), and the LinuxResources delta the OCI runtime's
`update` gets for a running container (only what the request sets)."""

from __future__ import annotations

from orlop.errors import Conflict, InvalidParameter

INT_FIELDS = ("BlkioWeight", "CpuShares", "NanoCpus", "CpuPeriod", "CpuQuota", "CpuRealtimePeriod",
              "CpuRealtimeRuntime", "Memory", "MemorySwap", "MemoryReservation", "KernelMemory", "PidsLimit",
              "MemorySwappiness", "CpuCount", "CpuPercent", "IOMaximumIOps", "IOMaximumBandwidth")
STRING_FIELDS = ("CpusetCpus", "CpusetMems")
# What an update changes in HostConfig, in UpdateContainer's order (0 or "" keeps the current value).
MERGED_FIELDS = ("BlkioWeight", "CpuShares", "NanoCpus", "CpuPeriod", "CpuQuota", "CpusetCpus", "CpusetMems",
                 "Memory", "MemorySwap", "MemoryReservation", "CpuRealtimePeriod", "CpuRealtimeRuntime")
RESTART_POLICIES = ("no", "always", "on-failure", "unless-stopped")
CFS_PERIOD = 100_000  # µs: the period --cpus uses


def read_request(body, api_version: str | None = None) -> tuple[dict, dict | None]:
    """(resources, restart policy or None) of an update request body."""
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise InvalidParameter("the update request must be a JSON object (resources and RestartPolicy)")
    resources: dict = {}
    for key in INT_FIELDS:
        value = body.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise _type_error(key, value, "int64")
        resources[key] = value
    for key in STRING_FIELDS:
        value = body.get(key)
        if value is not None and not isinstance(value, str):
            raise _type_error(key, value, "string")
        if value:
            resources[key] = value
    resources.pop("KernelMemory", None)  # gone from the API (1.42); the kernel ignores it anyway
    if api_version is not None and _older(api_version, "1.40"):
        resources.pop("PidsLimit", None)  # not part of the update before API 1.40
    if resources.get("PidsLimit") is not None and resources["PidsLimit"] <= 0:
        resources["PidsLimit"] = 0  # 0 and -1 (any negative) mean unlimited
    policy = body.get("RestartPolicy")
    if policy is not None:
        if not isinstance(policy, dict) or not isinstance(policy.get("Name", ""), str) or \
                not isinstance(policy.get("MaximumRetryCount", 0), int):
            raise _type_error("RestartPolicy", policy, "container.RestartPolicy")
        policy = {"Name": policy.get("Name") or "", "MaximumRetryCount": policy.get("MaximumRetryCount") or 0}
        check_restart_policy(policy)
        if not policy["Name"]:
            policy = None
    return resources, policy


def check_restart_policy(policy: dict) -> None:
    """moby's validateRestartPolicy."""
    name, count = policy.get("Name") or "", policy.get("MaximumRetryCount") or 0
    if name in ("always", "unless-stopped", "no"):
        if count:
            raise InvalidParameter("invalid restart policy: maximum retry count can only be used with 'on-failure'"
                                   + (" and cannot be negative" if count < 0 else ""))
    elif name == "on-failure":
        if count < 0:
            raise InvalidParameter("invalid restart policy: maximum retry count cannot be negative")
    elif name:
        raise InvalidParameter(f"invalid restart policy: unknown policy '{name}'; use one of 'no', 'always', "
                               "'on-failure', or 'unless-stopped'")


def merge(host_config: dict, resources: dict, policy: dict | None, cid: str) -> dict:
    """The HostConfig after the update (a new dict). Conflict "Cannot update container <id>: …"
    where moby refuses: --cpus against a set period/quota (and back), a memory limit above the
    memory+swap limit without a new one, a restart policy on an --rm container."""
    current = dict(host_config)

    def refuse(message: str) -> Conflict:
        return Conflict(f"Cannot update container {cid}: {message}")

    nano = resources.get("NanoCpus") or 0
    if nano > 0 and (current.get("CpuPeriod") or 0) > 0:
        raise refuse("Conflicting options: Nano CPUs cannot be updated as CPU Period has already been set")
    if nano > 0 and (current.get("CpuQuota") or 0) > 0:
        raise refuse("Conflicting options: Nano CPUs cannot be updated as CPU Quota has already been set")
    if (resources.get("CpuPeriod") or 0) > 0 and (current.get("NanoCpus") or 0) > 0:
        raise refuse("Conflicting options: CPU Period cannot be updated as NanoCPUs has already been set")
    if (resources.get("CpuQuota") or 0) > 0 and (current.get("NanoCpus") or 0) > 0:
        raise refuse("Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set")
    memory = resources.get("Memory") or 0
    if memory and memory > (current.get("MemorySwap") or 0) and not resources.get("MemorySwap"):
        raise refuse("Memory limit should be smaller than already set memoryswap limit, update the memoryswap at "
                     "the same time")
    for key in MERGED_FIELDS:
        if resources.get(key):
            current[key] = resources[key]
    if resources.get("PidsLimit") is not None:
        current["PidsLimit"] = resources["PidsLimit"]
    if policy is not None:
        if current.get("AutoRemove") and policy["Name"] != "no":
            raise refuse("Restart policy cannot be updated because AutoRemove is enabled for the container")
        current["RestartPolicy"] = dict(policy)
    return current


def runtime_delta(resources: dict) -> dict:
    """The linux.resources given to the runtime's `update` for a running container: only
    what the request sets (moby's toContainerdResources). Unlike dockerd, a memory+swap of
    -1 is passed on, so that "unlimited swap" is applied and not just recorded."""
    delta: dict = {}
    if resources.get("BlkioWeight"):
        delta["blockIO"] = {"weight": resources["BlkioWeight"]}
    cpu: dict = {}
    for key, name in (("CpusetCpus", "cpus"), ("CpusetMems", "mems"), ("CpuShares", "shares"),
                      ("CpuRealtimePeriod", "realtimePeriod"), ("CpuRealtimeRuntime", "realtimeRuntime")):
        if resources.get(key):
            cpu[name] = resources[key]
    if resources.get("NanoCpus"):
        cpu["period"] = CFS_PERIOD
        cpu["quota"] = resources["NanoCpus"] * CFS_PERIOD // 1_000_000_000
    else:
        if resources.get("CpuPeriod"):
            cpu["period"] = resources["CpuPeriod"]
        if resources.get("CpuQuota"):
            cpu["quota"] = resources["CpuQuota"]
    if cpu:
        delta["cpu"] = cpu
    memory = {name: resources[key] for key, name in (("Memory", "limit"), ("MemoryReservation", "reservation"))
              if resources.get(key)}
    swap = resources.get("MemorySwap") or 0
    if swap > 0 or swap == -1:
        memory["swap"] = swap
    if memory:
        delta["memory"] = memory
    if resources.get("PidsLimit") is not None:
        delta["pids"] = {"limit": resources["PidsLimit"] if resources["PidsLimit"] > 0 else -1}
    return delta


def _type_error(field: str, value, want: str) -> InvalidParameter:
    got = {bool: "bool", int: "number", float: "number", str: "string", list: "array", dict: "object"}.get(
        type(value), type(value).__name__)
    return InvalidParameter(f"json: cannot unmarshal {got} into Go struct field UpdateConfig.{field} of type {want}")


def _older(version: str, than: str) -> bool:
    def parts(text: str) -> tuple[int, ...]:
        return tuple(int(p) for p in text.split(".") if p.isdigit())
    return parts(version) < parts(than)
