"""What both cgroup versions share: errors, cgroupfs file I/O, the host's layout
(from /proc/self/mountinfo and /proc/self/cgroup) and where a cgroupsPath lands.

Only os, errno and time are imported: this runs on every container start.
"""

from __future__ import annotations

import errno
import os
import time


class CgroupError(OSError):
    """A cgroupfs operation failed; the message names the file and the value.

    Like OSError itself, CgroupError(EACCES, ...) is a PermissionError and
    CgroupError(ENOENT, ...) a FileNotFoundError, so callers can catch those.
    """

    def __new__(cls, *args: object) -> CgroupError:
        if cls is CgroupError and args and isinstance(args[0], int):
            cls = _BY_ERRNO.get(args[0], cls)
        return super().__new__(cls, *args)


class CgroupPermissionError(CgroupError, PermissionError):
    pass


class CgroupNotFoundError(CgroupError, FileNotFoundError):
    pass


_BY_ERRNO = {errno.EACCES: CgroupPermissionError, errno.EPERM: CgroupPermissionError,
             errno.ENOENT: CgroupNotFoundError}


class InvalidResource(CgroupError, ValueError):
    """A linux.resources value that is wrong, or that this host cannot apply.

    Both an OSError (the runtime reports those as one line) and a ValueError.
    """

    def __new__(cls, message: str, code: int = errno.EINVAL) -> InvalidResource:
        return super().__new__(cls, code, message)


# --- cgroupfs files -----------------------------------------------------------------

def write(directory: str, name: str, value: str | int) -> None:
    """One write(2) of `value`, as the kernel wants it (cgroupfs parses each write whole)."""
    path = f"{directory}/{name}"
    text = str(value)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)  # O_TRUNC: for fake trees; cgroupfs ignores it
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)
    except OSError as e:
        raise CgroupError(e.errno, f"writing {text!r} to {path}: {e.strerror}") from None


def read(directory: str, name: str) -> str:
    """The file's content without the trailing newline; OSError when it is missing."""
    with open(f"{directory}/{name}") as f:
        return f.read().strip()


def read_int(directory: str, name: str, default: int | None = 0) -> int | None:
    """An integer file; `default` when it is missing, empty or "max"."""
    try:
        text = read(directory, name)
    except OSError:
        return default
    try:
        return int(text)
    except ValueError:
        return default


def read_keyed(directory: str, name: str) -> dict[str, int]:
    """A flat-keyed file (memory.stat, memory.events, cpu.stat): {} when missing."""
    result: dict[str, int] = {}
    try:
        with open(f"{directory}/{name}") as f:
            for line in f:
                key, _, value = line.partition(" ")
                try:
                    result[key] = int(value)
                except ValueError:
                    continue
    except OSError:
        pass
    return result


def exists(directory: str, name: str) -> bool:
    return os.path.exists(f"{directory}/{name}")


def procs(directory: str) -> list[int]:
    """Every pid in the cgroup `directory` and its descendants (sorted, once each)."""
    found: set[int] = set()
    _collect_procs(directory, found)
    return sorted(found)


def _collect_procs(directory: str, found: set[int]) -> None:
    try:
        with open(f"{directory}/cgroup.procs") as f:
            found.update(int(pid) for pid in f.read().split())
        children = [entry.path for entry in os.scandir(directory) if entry.is_dir(follow_symlinks=False)]
    except (FileNotFoundError, NotADirectoryError):
        return  # removed while we walked: nothing left to count there
    for child in children:
        _collect_procs(child, found)


def remove_tree(directory: str, timeout: float = 2.0) -> None:
    """rmdir a cgroup and the cgroups below it, children first. A missing one is fine.

    rmdir fails with EBUSY while the kernel still counts a task that is exiting,
    so it is retried (backing off) for up to `timeout` seconds.
    """
    try:
        children = [entry.path for entry in os.scandir(directory) if entry.is_dir(follow_symlinks=False)]
    except (FileNotFoundError, NotADirectoryError):
        return
    except OSError as e:
        raise CgroupError(e.errno, f"removing cgroup {directory}: {e.strerror}") from None
    for child in children:
        remove_tree(child, timeout)
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        try:
            os.rmdir(directory)
            return
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno != errno.EBUSY or time.monotonic() >= deadline:
                hint = " (processes are still in it)" if e.errno == errno.EBUSY else ""
                raise CgroupError(e.errno, f"removing cgroup {directory}: {e.strerror}{hint}") from None
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass  # exited since we listed it


# --- the host's layout ------------------------------------------------------------------

UNIFIED, HYBRID, LEGACY = "unified", "hybrid", "legacy"


class Hierarchies:
    """The mounted cgroup hierarchies and this process's place in each."""

    __slots__ = ("v1", "v2_mount", "own", "roots")

    def __init__(self, v1: dict[str, str], v2_mount: str | None, own: dict[str, str],
                 roots: dict[str, str] | None = None) -> None:
        self.v1 = v1              # v1 controller (or "name=systemd") -> mount point
        self.v2_mount = v2_mount  # the cgroup2 mount point, if any
        self.own = own            # controller ("" for cgroup2) -> our cgroup, as /proc/self/cgroup says
        self.roots = roots or {}  # controller ("" for cgroup2) -> the mount's root inside its hierarchy

    @property
    def mode(self) -> str:
        """unified (cgroup2 only), hybrid (v1 controllers + a cgroup2 tree) or legacy (v1 only).

        A v1 hierarchy without controllers (name=systemd alone) next to cgroup2 is
        still unified: it limits nothing.
        """
        has_v1_controllers = any(not c.startswith("name=") for c in self.v1)
        if self.v2_mount and not has_v1_controllers:
            return UNIFIED
        return HYBRID if self.v2_mount else LEGACY

    @property
    def unified_only(self) -> bool:
        return self.mode == UNIFIED

    def own_in_mount(self, controller: str) -> str | None:
        """Our cgroup as a path below the hierarchy's mount point; None when the mount
        does not show it (the mount is rooted elsewhere in the hierarchy)."""
        own = self.own.get(controller, "/")
        root = self.roots.get(controller, "/")
        if root == "/":
            return own
        if own == root:
            return "/"
        if own.startswith(root + "/"):
            return own[len(root):]
        return None


def read_hierarchies(mountinfo: str = "/proc/self/mountinfo", cgroup_file: str = "/proc/self/cgroup") -> Hierarchies:
    """Detect the layout at run time; both paths can be pointed at fake files in tests."""
    own = _read_own_cgroups(cgroup_file)
    v1: dict[str, str] = {}
    roots: dict[str, str] = {}
    v2_mount = None
    with open(mountinfo) as f:
        for line in f:
            fields = line.split()
            try:
                sep = fields.index("-", 6)
            except ValueError:
                continue
            fstype, root, mountpoint = fields[sep + 1], _unescape(fields[3]), _unescape(fields[4])
            if fstype == "cgroup2" and v2_mount is None:  # the first one: later ones are binds
                v2_mount = mountpoint
                roots[""] = root
            elif fstype == "cgroup":
                # Superblock options name the hierarchy's controllers, among mount flags
                # (rw, xattr, noprefix...): keep the ones /proc/self/cgroup knows.
                for option in fields[sep + 3].split(","):
                    if option in own and option not in v1:
                        v1[option] = mountpoint
                        roots[option] = root
    if v2_mount is None and not v1:
        raise CgroupError(errno.ENOENT, f"no cgroup filesystem is mounted (looked in {mountinfo})")
    return Hierarchies(v1, v2_mount, own, roots)


def _read_own_cgroups(cgroup_file: str) -> dict[str, str]:
    """/proc/self/cgroup: "id:controller,controller:path", "0::path" for cgroup2."""
    own: dict[str, str] = {}
    with open(cgroup_file) as f:
        for line in f:
            parts = line.rstrip("\n").split(":", 2)
            if len(parts) != 3:
                continue
            _, controllers, path = parts
            for controller in controllers.split(",") if controllers else [""]:
                own[controller] = path
    return own


def _unescape(field: str) -> str:
    r"""mountinfo writes space, tab, newline and backslash as \040 \011 \012 \134."""
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


# --- where a cgroupsPath lands ---------------------------------------------------------

DEFAULT_SYSTEMD_SLICE = "system.slice"
DEFAULT_SCOPE_PREFIX = "orlop"


def expand_slice(slice_name: str) -> str:
    """systemd's slice nesting: "a-b-c.slice" lives in /a.slice/a-b.slice/a-b-c.slice."""
    if slice_name in ("", "-.slice"):
        return "/"
    stem = slice_name[:-len(".slice")]
    if not slice_name.endswith(".slice") or "/" in slice_name or not stem or "" in stem.split("-"):
        raise InvalidResource(f"invalid systemd slice name {slice_name!r}: expected names like "
                              "\"machine.slice\" or \"kubepods-burstable.slice\"")
    parts = stem.split("-")
    return "".join("/" + "-".join(parts[:i + 1]) + ".slice" for i in range(len(parts)))


def is_systemd_path(cgroups_path: str) -> bool:
    """"slice:prefix:name", what podman and containerd send for systemd-managed cgroups."""
    return cgroups_path.count(":") == 2 and not cgroups_path.startswith("/")


def systemd_path(cgroups_path: str, container_id: str) -> str:
    """The cgroupfs path systemd would give the scope of "slice:prefix:name".

    There is no systemd to ask here, so no transient unit is started: the scope's
    directory is made directly, where systemd would have put it, so that tools that
    look for it find it. An empty path means system.slice:orlop:<id>.
    """
    parts = cgroups_path.split(":") if cgroups_path else [DEFAULT_SYSTEMD_SLICE, DEFAULT_SCOPE_PREFIX, container_id]
    if len(parts) != 3:
        raise InvalidResource(f"cgroupsPath {cgroups_path!r}: with systemd cgroups it must be "
                              "\"slice:prefix:name\", e.g. \"system.slice:docker:<id>\"")
    slice_name, prefix, name = parts
    if not name or "/" in name or "/" in prefix:
        raise InvalidResource(f"cgroupsPath {cgroups_path!r}: the unit name must be non-empty and hold no \"/\"")
    if name.endswith(".slice"):
        unit = name  # a slice asked for by name, as runc allows
    else:
        unit = f"{prefix}-{name}.scope" if prefix else f"{name}.scope"
    return expand_slice(slice_name or DEFAULT_SYSTEMD_SLICE).rstrip("/") + "/" + unit


def resolve_path(mountpoint: str, own: str | None, cgroups_path: str, container_id: str, systemd: bool) -> str:
    """The directory of OCI linux.cgroupsPath in the hierarchy mounted at `mountpoint`.

    systemd form -> where systemd puts the scope, from the hierarchy's root;
    absolute -> from the hierarchy's root; relative or empty -> below our own
    cgroup `own` (runc's rule), named after the container when empty.
    """
    if systemd or is_systemd_path(cgroups_path):
        inner = systemd_path(cgroups_path, container_id)
    elif cgroups_path.startswith("/"):
        inner = cgroups_path
    else:
        if own is None:
            raise CgroupError(errno.ENOENT, f"cgroupsPath {cgroups_path!r} is relative to our own cgroup, which "
                                            f"the cgroup mount at {mountpoint} does not show; use an absolute path")
        inner = own.rstrip("/") + "/" + (cgroups_path or container_id)
    # normpath of an absolute path clamps "..": a cgroupsPath cannot leave the hierarchy.
    return mountpoint.rstrip("/") + os.path.normpath("/" + inner.lstrip("/"))
