"""A container's devices as dockerd gives them (moby daemon/oci_linux.go WithDevices,
oci/devices_linux.go): `--device HOST[:CONTAINER[:PERMS]]` (a directory brings every
device under it), `--device-cgroup-rule 'c 1:3 mr'`, and every host device for
`--privileged`; each a node in linux.devices and an allow rule in the device cgroup."""

from __future__ import annotations

import os
import re
import stat

from orlop.errors import InvalidParameter

# What --privileged does not copy from the host's /dev (moby's HostDevices skips these).
_SKIPPED_DIRS = {"pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"}
_RULE = re.compile(r"^([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})$")


def _node(host_path: str, container_path: str) -> dict | None:
    """A device node's entry for linux.devices (None if `host_path` is no device)."""
    st = os.stat(host_path)
    if stat.S_ISCHR(st.st_mode):
        kind = "c"
    elif stat.S_ISBLK(st.st_mode):
        kind = "b"
    else:
        return None
    return {"path": container_path, "type": kind, "major": os.major(st.st_rdev), "minor": os.minor(st.st_rdev),
            "fileMode": stat.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid}


def _rule(node: dict, access: str) -> dict:
    return {"allow": True, "type": node["type"], "major": node["major"], "minor": node["minor"], "access": access}


def _under(directory: str, skip: set[str]) -> list[str]:
    found = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not (root == directory and d in skip))
        found += [os.path.join(root, f) for f in sorted(files)]
    return found


def host_devices() -> list[dict]:
    """Every device node of the host's /dev (for --privileged)."""
    nodes = []
    for path in _under("/dev", _SKIPPED_DIRS):
        try:
            node = _node(path, path)
        except OSError:
            continue
        if node is not None:
            nodes.append(node)
    return nodes


def requested(device: dict) -> list[tuple[dict, str]]:
    """One HostConfig.Devices entry: its nodes, each with the cgroup access it is given."""
    host = device.get("PathOnHost") or ""
    inside = device.get("PathInContainer") or host
    access = device.get("CgroupPermissions") or "rwm"
    if not re.fullmatch(r"[rwm]{1,3}", access):
        raise InvalidParameter(f"invalid device cgroup permissions {access!r}: use a combination of r, w and m")
    try:
        if os.path.isdir(host):
            found = []
            for path in _under(host, set()):
                node = _node(path, os.path.join(inside, os.path.relpath(path, host)))
                if node is not None:
                    found.append((node, access))
            return found
        node = _node(host, inside)
    except OSError as e:
        raise InvalidParameter(f'error gathering device information while adding custom device "{host}": '
                               f"{e.strerror.lower()}") from None
    if node is None:
        raise InvalidParameter(f'error gathering device information while adding custom device "{host}": '
                               "not a device node")
    return [(node, access)]


def cgroup_rule(text: str) -> dict:
    """--device-cgroup-rule 'TYPE MAJOR:MINOR ACCESS' ("c 1:3 mr", "b *:* rwm")."""
    match = _RULE.match(text.strip())
    if not match:
        raise InvalidParameter(f"invalid device cgroup rule format: '{text}'")
    kind, major, minor, access = match.groups()
    rule: dict = {"allow": True, "type": kind, "access": access}
    if major != "*":
        rule["major"] = int(major)
    if minor != "*":
        rule["minor"] = int(minor)
    return rule


def for_container(host_config: dict) -> tuple[list[dict], list[dict]]:
    """(linux.devices, extra allow rules for linux.resources.devices)."""
    if host_config.get("Privileged"):
        return host_devices(), []  # the privileged cgroup rule already allows everything
    nodes, rules = [], []
    for device in host_config.get("Devices") or []:
        for node, access in requested(device):
            nodes.append(node)
            rules.append(_rule(node, access))
    rules += [cgroup_rule(text) for text in host_config.get("DeviceCgroupRules") or []]
    return nodes, rules
