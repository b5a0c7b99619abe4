"""Detection of the cgroup layout, path resolution and cgroupfs file I/O."""

from __future__ import annotations

import os
import time


class CgroupError(OSError):
    pass


class Hierarchies:
    """Mounted cgroup hierarchies and this process's place in each."""

    __slots__ = ("v1", "v2_mount", "own")

    def __init__(self, v1: dict[str, str], v2_mount: str | None, own: dict[str, str]) -> None:
        self.v1 = v1                # controller (or "name=systemd") -> mount point
        self.v2_mount = v2_mount    # the cgroup2 mount point, if any
        self.own = own              # controller ("" for cgroup2) -> this process's cgroup path

    @property
    def unified_only(self) -> bool:
        return not self.v1 and self.v2_mount is not None


def read_hierarchies(mountinfo: str = "/proc/self/mountinfo", cgroup_file: str = "/proc/self/cgroup") -> Hierarchies:
    v1: dict[str, str] = {}
    v2_mount = None
    with open(mountinfo) as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            fstype, mountpoint = fields[sep + 1], fields[4]
            if fstype == "cgroup2" and v2_mount is None:
                v2_mount = mountpoint
            elif fstype == "cgroup":
                for option in fields[sep + 3].split(","):
                    if option in ("rw", "ro") or option.startswith(("release_agent=", "clone_children")):
                        continue
                    v1.setdefault(option, mountpoint)
    own: dict[str, str] = {}
    with open(cgroup_file) as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for controller in controllers.split(",") if controllers else [""]:
                own[controller] = path
    if v2_mount is None and not v1:
        raise CgroupError(2, "no cgroup filesystem is mounted (looked in /proc/self/mountinfo)")
    return Hierarchies(v1, v2_mount, own)


def expand_slice(slice_name: str) -> str:
    """systemd's slice nesting: "a-b-c.slice" lives in /a.slice/a-b.slice/a-b-c.slice."""
    if slice_name in ("", "-.slice"):
        return "/"
    if not slice_name.endswith(".slice") or "/" in slice_name:
        raise CgroupError(22, f"invalid systemd slice name {slice_name!r}")
    parts = slice_name[:-len(".slice")].split("-")
    return "".join("/" + "-".join(parts[:i + 1]) + ".slice" for i in range(len(parts)))


def resolve_path(mountpoint: str, own: str, cgroups_path: str, container_id: str, systemd: bool) -> str:
    """The directory of OCI linux.cgroupsPath in the hierarchy mounted at `mountpoint`.

    systemd form "slice:prefix:name" (podman, containerd with SystemdCgroup) -> the
    scope's place in the tree (there is no systemd to ask here, so the same path is
    used directly as cgroupfs); absolute -> from the hierarchy's root; relative or
    empty -> below our own cgroup (runc's rule), the id when empty.
    """
    if systemd or cgroups_path.count(":") == 2:
        parts = cgroups_path.split(":") if cgroups_path else ["system.slice", "orlop", container_id]
        if len(parts) != 3:
            raise CgroupError(22, f"cgroupsPath {cgroups_path!r}: expected slice:prefix:name with --systemd-cgroup")
        slice_name, prefix, name = parts
        scope = name if name.endswith(".slice") else f"{prefix}-{name}.scope" if prefix else f"{name}.scope"
        relative = expand_slice(slice_name or "system.slice").rstrip("/") + "/" + scope
    elif cgroups_path.startswith("/"):
        relative = cgroups_path
    else:
        relative = own.rstrip("/") + "/" + (cgroups_path or container_id)
    # normpath of an absolute path clamps "..": a cgroupsPath cannot leave the hierarchy.
    return mountpoint.rstrip("/") + os.path.normpath("/" + relative.lstrip("/"))


def write(directory: str, name: str, value: str | int) -> None:
    path = f"{directory}/{name}"
    text = str(value)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)  # O_TRUNC: as runc; cgroupfs ignores it
    except OSError as e:
        raise CgroupError(e.errno, f"opening {path}: {e.strerror}") from None
    try:
        os.write(fd, text.encode())
    except OSError as e:
        raise CgroupError(e.errno, f"writing {text!r} to {path}: {e.strerror}") from None
    finally:
        os.close(fd)


def read(directory: str, name: str) -> str:
    with open(f"{directory}/{name}") as f:
        return f.read().strip()


def read_int(directory: str, name: str, default: int = 0) -> int:
    try:
        text = read(directory, name)
    except OSError:
        return default
    return default if text == "max" else int(text)


def read_keyed(directory: str, name: str) -> dict[str, int]:
    """A flat-keyed file like memory.stat or memory.events."""
    result = {}
    try:
        with open(f"{directory}/{name}") as f:
            for line in f:
                key, _, value = line.partition(" ")
                if value.strip().lstrip("-").isdigit():
                    result[key] = int(value)
    except OSError:
        pass
    return result


def procs(directory: str) -> list[int]:
    """Every pid in `directory` and its descendants."""
    pids: list[int] = []
    for current, _subdirs, _ in os.walk(directory):
        try:
            with open(f"{current}/cgroup.procs") as f:
                pids.extend(int(p) for p in f.read().split())
        except FileNotFoundError:
            continue
    return pids


def remove_tree(directory: str) -> None:
    """rmdir a cgroup and its children, retrying while the kernel still counts exiting tasks."""
    if not os.path.isdir(directory):
        return
    for current, _subdirs, _ in os.walk(directory, topdown=False):
        for attempt in range(50):
            try:
                os.rmdir(current)
                break
            except FileNotFoundError:
                break
            except OSError as e:
                if e.errno != 16 or attempt == 49:  # EBUSY
                    raise CgroupError(e.errno, f"removing cgroup {current}: {e.strerror}") from None
                time.sleep(0.002 * (attempt + 1))


def signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
