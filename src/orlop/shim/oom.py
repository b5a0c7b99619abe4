"""Telling an OOM kill from any other SIGKILL: the kill counter of the container's memory
cgroup, read when the container starts and again when its init is reaped (the kernel counts
the kill before it sends the signal, so the count is there by the time the exit is seen).

cgroup v1: `oom_kill` in memory.oom_control; cgroup v2: `oom_kill` in memory.events (which
counts the container's sub-cgroups too). The memory cgroup is found from the init's
/proc/<pid>/cgroup and the mounts this process sees, whatever runtime made it and wherever
the hierarchies are mounted. Only `os` is used: this runs in every shim.
"""

from __future__ import annotations

import os


def counter_file(pid: int, proc: str = "/proc", mountinfo: str = "/proc/self/mountinfo") -> str | None:
    """The file holding the OOM kill count of `pid`'s memory cgroup; None when there is none."""
    try:
        with open(f"{proc}/{pid}/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    v1_memory, cgroup2 = _mounts(mountinfo)
    unified = None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(",") and v1_memory:
            return _join(v1_memory, path, "memory.oom_control")
        if controllers == "":
            unified = path
    if unified is not None and cgroup2:
        candidate = _join(cgroup2, unified, "memory.events")
        if candidate and os.path.exists(candidate):
            return candidate
    return None


def kills(path: str | None) -> int:
    """The `oom_kill` count in `path` (0 when it is missing or gone)."""
    if not path:
        return 0
    try:
        with open(path, "rb") as f:
            for line in f.read().split(b"\n"):
                if line.startswith(b"oom_kill "):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _mounts(mountinfo: str) -> tuple[tuple[str, str] | None, tuple[str, str] | None]:
    """(mount point, root in the hierarchy) of the v1 memory hierarchy and of cgroup2."""
    v1_memory = cgroup2 = None
    try:
        with open(mountinfo) as f:
            for line in f:
                fields = line.split()
                try:
                    sep = fields.index("-", 6)
                except ValueError:
                    continue
                fstype = fields[sep + 1]
                if fstype == "cgroup" and v1_memory is None and "memory" in fields[sep + 3].split(","):
                    v1_memory = (_unescape(fields[4]), _unescape(fields[3]))
                elif fstype == "cgroup2" and cgroup2 is None:
                    cgroup2 = (_unescape(fields[4]), _unescape(fields[3]))
    except OSError:
        pass
    return v1_memory, cgroup2


def _join(mount: tuple[str, str], path: str, name: str) -> str | None:
    """The file `name` of cgroup `path` (as /proc/<pid>/cgroup names it) below `mount`."""
    mountpoint, root = mount
    if root != "/":
        if path != root and not path.startswith(root + "/"):
            return None  # the mount does not show this part of the hierarchy
        path = path[len(root):]
    return f"{mountpoint.rstrip('/')}{path.rstrip('/')}/{name}"


def _unescape(field: str) -> str:
    r"""mountinfo writes space, tab, newline and backslash as \040 \011 \012 \134."""
    return field if "\\" not in field else field.encode().decode("unicode_escape")
