"""cgroups: where a container's cgroup lives and how its limits are written.

`open_manager` detects the host's layout at run time from /proc/self/mountinfo:
unified (cgroup v2 only), hybrid (v1 controllers plus a cgroup2 tree, usually at
/sys/fs/cgroup/unified) or legacy (v1 only), and returns a CgroupManager:
V2Manager on unified hosts, V1Manager otherwise. `paths` (controller ->
directory, "" for the cgroup2 one, the shape of runc's `cgroup_paths`) is what the
runtime keeps in state.json and hands back to `load_manager` for later commands,
which then read nothing but those directories.

cgroupsPath, as runc reads it:
  "/a/b"                  below the root of every hierarchy
  "a/b"                   below this process's own cgroup in each hierarchy
  ""                      "<container id>" below our own cgroup
  "slice:prefix:name"     (or any path with systemd=True, runc's --systemd-cgroup)
                          where systemd would put the scope:
                          /<a.slice/a-b.slice>/<prefix>-<name>.scope. orlop does not talk
                          to systemd: the directories are made directly (cgroupfs driver).
"""

from __future__ import annotations

from orlop.linux.cgroups.common import (
    CgroupError,
    Hierarchies,
    InvalidResource,
    read_hierarchies,
    resolve_path,
)
from orlop.linux.cgroups.manager import CgroupManager, NoCgroup

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs start-up time
if TYPE_CHECKING:
    from orlop.linux.cgroups.v1 import V1Manager
    from orlop.linux.cgroups.v2 import V2Manager

__all__ = ["CgroupError", "CgroupManager", "Hierarchies", "InvalidResource", "NoCgroup", "load_manager",
           "open_manager", "read_hierarchies"]


def open_manager(cgroups_path: str, container_id: str, *, systemd: bool = False, resources: dict | None = None,
                 hierarchies: Hierarchies | None = None) -> V1Manager | V2Manager:
    """The manager of a new container's cgroup (nothing is created until `create()`).

    `resources` (linux.resources) matters on hybrid hosts only: the container joins
    the cgroup2 tree only when they need it (`unified` files, or hugepage limits
    when hugetlb is not a v1 controller), because moving a process into a cgroup2
    directory costs an RCU grace period (5-20 ms) on every start and limits
    nothing else there. `hierarchies` replaces the detection (tests).
    """
    found = hierarchies or read_hierarchies()
    if found.unified_only:
        from orlop.linux.cgroups.v2 import V2Manager

        return V2Manager({"": _resolve(found, "", cgroups_path, container_id, systemd)})
    paths = {controller: _resolve(found, controller, cgroups_path, container_id, systemd) for controller in found.v1}
    if found.v2_mount and _needs_cgroup2(resources or {}, found):
        paths[""] = _resolve(found, "", cgroups_path, container_id, systemd)
    from orlop.linux.cgroups.v1 import V1Manager

    return V1Manager(paths)


def load_manager(paths: dict[str, str]) -> V1Manager | V2Manager:
    """The manager of an existing container, from the `paths` saved in its state."""
    if not paths:
        raise CgroupError(2, "the container has no cgroup paths recorded")
    if set(paths) == {""}:
        from orlop.linux.cgroups.v2 import V2Manager

        return V2Manager(dict(paths))
    from orlop.linux.cgroups.v1 import V1Manager

    return V1Manager(dict(paths))


def _resolve(found: Hierarchies, controller: str, cgroups_path: str, container_id: str, systemd: bool) -> str:
    mountpoint = found.v2_mount if controller == "" else found.v1[controller]
    assert mountpoint is not None
    return resolve_path(mountpoint, found.own_in_mount(controller), cgroups_path, container_id, systemd)


def _needs_cgroup2(resources: dict, found: Hierarchies) -> bool:
    return bool(resources.get("unified")) or bool(resources.get("hugepageLimits") and "hugetlb" not in found.v1)
