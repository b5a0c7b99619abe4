"""What the container's process may do, from /proc/<pid>/status: its capabilities against
the kernel's full set (0..cap_last_cap), its seccomp mode with the profile the container
was given, no_new_privs, and its user namespace's uid and gid maps."""

from __future__ import annotations

from orlop.linux import procfs
from orlop.linux.caps import CAP_NAMES, last_cap

SECCOMP_MODES = {0: "disabled", 1: "strict", 2: "filter"}
_NUMBERED = {number: name for name, number in CAP_NAMES.items()}


def _name(cap: int) -> str:
    return _NUMBERED.get(cap, f"CAP_{cap}")


def capabilities(status: dict[str, str], last: int) -> dict:
    """kept: in the effective set; dropped: every capability of this kernel that is not in the
    bounding set (gone for good, for the process and whatever it executes)."""
    masks = {key: int(status.get(key, "0"), 16) for key in ("CapEff", "CapPrm", "CapBnd", "CapInh", "CapAmb")}
    every = range(last + 1)
    return {
        "last_cap": last,
        "effective": f"{masks['CapEff']:016x}", "permitted": f"{masks['CapPrm']:016x}",
        "bounding": f"{masks['CapBnd']:016x}", "inheritable": f"{masks['CapInh']:016x}",
        "ambient": f"{masks['CapAmb']:016x}",
        "kept": [_name(c) for c in every if masks["CapEff"] >> c & 1],
        "dropped": [_name(c) for c in every if not masks["CapBnd"] >> c & 1],
        "bounding_only": [_name(c) for c in every if masks["CapBnd"] >> c & 1 and not masks["CapEff"] >> c & 1],
    }


def seccomp_profile_name(host_config: dict, daemon_has_profile: bool) -> str:
    """The profile asked for: "unconfined", "custom" (seccomp=<file>), "default" (Docker's),
    or "none" when the daemon has no default profile to give."""
    for option in host_config.get("SecurityOpt") or []:
        key, sep, value = option.partition("=")
        if not sep:
            key, sep, value = option.partition(":")
        if key == "seccomp":
            return "unconfined" if value == "unconfined" else "custom"
    if host_config.get("Privileged"):
        return "unconfined"
    return "default" if daemon_has_profile else "none"


def seccomp(status: dict[str, str], host_config: dict, bundle: dict | None, daemon_has_profile: bool) -> dict:
    mode = int(status.get("Seccomp", "0") or 0)
    rules = ((bundle or {}).get("linux") or {}).get("seccomp")
    return {"mode": mode, "mode_name": SECCOMP_MODES.get(mode, str(mode)),
            "filters": int(status["Seccomp_filters"]) if status.get("Seccomp_filters", "").isdigit() else None,
            "profile": seccomp_profile_name(host_config, daemon_has_profile),
            "default_action": rules.get("defaultAction") if isinstance(rules, dict) else None,
            "syscall_rules": len(rules.get("syscalls") or []) if isinstance(rules, dict) else None}


def user_namespace(host_pid: int, new: bool | None) -> dict:
    uid_map = procfs.read_id_map(host_pid, "uid_map")
    gid_map = procfs.read_id_map(host_pid, "gid_map")
    return {"new": new, "uid_map": uid_map, "gid_map": gid_map,
            "identity": uid_map == procfs.IDENTITY_MAP and gid_map == procfs.IDENTITY_MAP}


def view(host_pid: int, host_config: dict, bundle: dict | None, daemon_has_profile: bool,
         user_ns_new: bool | None) -> dict:
    status = procfs.read_status(host_pid)
    return {
        "capabilities": capabilities(status, last_cap()),
        "seccomp": seccomp(status, host_config, bundle, daemon_has_profile),
        "no_new_privs": status.get("NoNewPrivs") == "1",
        "user_namespace": user_namespace(host_pid, user_ns_new),
    }
