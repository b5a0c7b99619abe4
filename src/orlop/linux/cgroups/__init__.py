"""cgroups: where a container's cgroup lives and how its limits are written.

`open_manager` detects the host's layout at run time — unified (cgroup v2 only),
hybrid (v1 controllers plus a cgroup2 tree, typically at /sys/fs/cgroup/unified)
or legacy (v1 only) — and returns a V1Manager or V2Manager. Both expose the same
methods; `paths` (controller -> directory, "" for the cgroup2 directory) is
what the runtime persists in state.json and hands back to `load_manager`.
"""

from __future__ import annotations

from orlop.linux.cgroups.common import CgroupError, Hierarchies, read_hierarchies, resolve_path

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~10 ms of start-up
if TYPE_CHECKING:
    from orlop.linux.cgroups.v1 import V1Manager
    from orlop.linux.cgroups.v2 import V2Manager

__all__ = ["CgroupError", "NoCgroup", "load_manager", "open_manager"]


class NoCgroup:
    """A container without a cgroup: what an unprivileged (rootless) user gets when no
    cgroup was delegated to it and the config asks for no limits (as runc's rootless mode)."""

    version = 0
    paths: dict[str, str] = {}
    unified_dir = None

    def create(self) -> None: ...
    def apply(self, resources: dict) -> None: ...
    def join_current_thread(self) -> None: ...
    def destroy(self) -> None: ...


def open_manager(cgroups_path: str, container_id: str, *, systemd: bool = False, resources: dict | None = None,
                 hierarchies: Hierarchies | None = None) -> V1Manager | V2Manager:
    """The manager for OCI linux.cgroupsPath (absolute, relative to our own cgroup, or
    systemd's slice:prefix:name), on this host's cgroup layout.

    On a hybrid host the cgroup2 tree is joined only when `resources` need it
    (`unified` files, or hugetlb limits when hugetlb is not a v1 controller): joining
    it costs an RCU grace period on every container start and limits nothing else.
    """
    found = hierarchies or read_hierarchies()
    if found.unified_only:
        from orlop.linux.cgroups.v2 import V2Manager

        return V2Manager({"": resolve_path(found.v2_mount, found.own[""], cgroups_path, container_id, systemd)})
    paths = {}
    for controller, mountpoint in found.v1.items():
        paths[controller] = resolve_path(mountpoint, found.own.get(controller, "/"), cgroups_path, container_id,
                                         systemd)
    resources = resources or {}
    needs_unified = resources.get("unified") or (resources.get("hugepageLimits") and "hugetlb" not in found.v1)
    if found.v2_mount and needs_unified:
        paths[""] = resolve_path(found.v2_mount, found.own.get("", "/"), cgroups_path, container_id, systemd)
    from orlop.linux.cgroups.v1 import V1Manager

    return V1Manager(paths)


def load_manager(paths: dict[str, str]) -> V1Manager | V2Manager:
    """The manager of an existing container, from the paths saved in its state."""
    if set(paths) == {""}:
        from orlop.linux.cgroups.v2 import V2Manager

        return V2Manager(paths)
    from orlop.linux.cgroups.v1 import V1Manager

    return V1Manager(paths)
