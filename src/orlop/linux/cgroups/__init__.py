"""cgroups: where a container's cgroup lives and how its limits are written.

`open_manager` detects the host's layout at run time — unified (cgroup v2 only),
hybrid (v1 controllers plus a cgroup2 tree, typically at /sys/fs/cgroup/unified)
or legacy (v1 only) — and returns a V1Manager or V2Manager. Both expose the same
methods; `paths` (controller -> directory, "" for the cgroup2 directory) is
what the runtime persists in state.json and hands back to `load_manager`.
"""

from __future__ import annotations

from orlop.linux.cgroups.common import CgroupError, Hierarchies, read_hierarchies, resolve_path
from orlop.linux.cgroups.v1 import V1Manager
from orlop.linux.cgroups.v2 import V2Manager

__all__ = ["CgroupError", "V1Manager", "V2Manager", "load_manager", "open_manager"]


def open_manager(cgroups_path: str, container_id: str, *, systemd: bool = False,
                 hierarchies: Hierarchies | None = None) -> V1Manager | V2Manager:
    """The manager for OCI linux.cgroupsPath (absolute, relative to our own cgroup, or
    systemd's slice:prefix:name), on this host's cgroup layout."""
    found = hierarchies or read_hierarchies()
    if found.unified_only:
        return V2Manager({"": resolve_path(found.v2_mount, found.own[""], cgroups_path, container_id, systemd)})
    paths = {}
    for controller, mountpoint in found.v1.items():
        paths[controller] = resolve_path(mountpoint, found.own.get(controller, "/"), cgroups_path, container_id,
                                         systemd)
    if found.v2_mount:  # hybrid: also join the cgroup2 tree, as runc does
        paths[""] = resolve_path(found.v2_mount, found.own.get("", "/"), cgroups_path, container_id, systemd)
    return V1Manager(paths)


def load_manager(paths: dict[str, str]) -> V1Manager | V2Manager:
    """The manager of an existing container, from the paths saved in its state."""
    if set(paths) == {""}:
        return V2Manager(paths)
    return V1Manager(paths)
