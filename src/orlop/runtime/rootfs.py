"""The container's filesystem: mounts, devices, pivot_root, masked and read-only paths.

Runs in the container's init, inside its new mount namespace. Every path from
config.json is resolved *inside* the rootfs the way the container will see it
(symlinks followed with the rootfs as /, `..` clamped at the top), then opened
with O_PATH|O_NOFOLLOW and mounted on through /proc/self/fd, so that a hostile
rootfs cannot make a mount or a device node land on the host.
"""

from __future__ import annotations

import os
import stat

from orlop.linux import syscalls as sc
from orlop.oci.runtime_spec import PROPAGATION_FLAGS, parse_mount_options

_MAX_SYMLINKS = 255

# runc's default devices: created in every container whose /dev is not the host's.
DEFAULT_DEVICES = (
    ("/dev/null", "c", 1, 3), ("/dev/zero", "c", 1, 5), ("/dev/full", "c", 1, 7),
    ("/dev/tty", "c", 5, 0), ("/dev/random", "c", 1, 8), ("/dev/urandom", "c", 1, 9),
)
DEV_SYMLINKS = (
    ("/proc/self/fd", "/dev/fd"), ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"), ("/proc/self/fd/2", "/dev/stderr"),
)
# statvfs f_flag bits -> mount flags that a bind remount must keep (the kernel
# refuses to clear "locked" flags inherited from a more privileged mount ns).
_LOCKED_FLAGS = ((1, sc.MS_RDONLY), (2, sc.MS_NOSUID), (4, sc.MS_NODEV), (8, sc.MS_NOEXEC),
                 (1024, 0x400), (2048, 0x800), (4096, sc.MS_RELATIME))


class RootfsError(OSError):
    pass


def resolve_in_root(root: str, path: str) -> str:
    """The host path of `path` as the container sees it, never outside `root`."""
    pending = [p for p in path.split("/") if p]
    resolved: list[str] = []
    links = 0
    while pending:
        part = pending.pop(0)
        if part == ".":
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = root + "/" + "/".join(resolved + [part])
        try:
            mode = os.lstat(candidate).st_mode
        except FileNotFoundError:
            resolved.append(part)
            continue
        if stat.S_ISLNK(mode):
            links += 1
            if links > _MAX_SYMLINKS:
                raise RootfsError(40, f"too many levels of symbolic links resolving {path} in the rootfs")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            pending[:0] = [p for p in target.split("/") if p]
        else:
            resolved.append(part)
    return root + ("/" + "/".join(resolved) if resolved else "")


def _ensure(root: str, host_path: str, directory: bool) -> None:
    """Create a mount point (a dir, or an empty file for a file bind mount)."""
    if os.path.lexists(host_path):
        return
    parent = os.path.dirname(host_path)
    if not parent.startswith(root):
        raise RootfsError(1, f"mount point {host_path} is outside the rootfs {root}")
    os.makedirs(parent, 0o755, exist_ok=True)
    if directory:
        os.mkdir(host_path, 0o755)
    else:
        os.close(os.open(host_path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644))


class _Pinned:
    """A path opened O_PATH|O_NOFOLLOW; `.proc` names it for mount(2) without re-resolving it."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
        self.proc = f"/proc/self/fd/{self.fd}"

    def __enter__(self) -> _Pinned:
        return self

    def __exit__(self, *exc) -> None:
        os.close(self.fd)


def _locked_flags(path: str) -> int:
    try:
        f_flag = os.statvfs(path).f_flag
    except OSError:
        return 0
    return sum(mount_flag for vfs_flag, mount_flag in _LOCKED_FLAGS if f_flag & vfs_flag)


def remount_bind(path: str, flags: int) -> None:
    """Change the flags of a bind mount, keeping the flags the kernel has locked."""
    base = sc.MS_BIND | sc.MS_REMOUNT | (flags & ~(sc.MS_BIND | sc.MS_REC))
    try:
        sc.mount(None, path, None, base)
    except PermissionError:
        sc.mount(None, path, None, base | _locked_flags(path))


class RootfsBuilder:
    """Builds the container's / from config.json, before and after pivot_root."""

    def __init__(self, spec: dict, rootfs: str, bundle: str, *, new_netns: bool, new_cgroupns: bool,
                 new_userns: bool, cgroup_paths: dict[str, str], before_cgroup_mount=None) -> None:
        self.spec = spec
        self.rootfs = rootfs
        self.bundle = bundle
        self.new_netns = new_netns
        self.new_cgroupns = new_cgroupns
        self.new_userns = new_userns
        self.cgroup_paths = cgroup_paths
        self.before_cgroup_mount = before_cgroup_mount
        self.mounts = spec.get("mounts") or []
        self.host_dev = any(m.get("destination") == "/dev" and "bind" in (m.get("options") or [])
                            or m.get("destination") == "/dev" and "rbind" in (m.get("options") or [])
                            for m in self.mounts)

    # -- before pivot_root -------------------------------------------------------------------
    def prepare_root(self) -> None:
        """Stop mount events leaking to the host, and make the rootfs a mount point."""
        propagation = (self.spec.get("linux") or {}).get("rootfsPropagation")
        sc.mount(None, "/", None, PROPAGATION_FLAGS.get(propagation or "rslave", sc.MS_SLAVE | sc.MS_REC))
        sc.mount(self.rootfs, self.rootfs, None, sc.MS_BIND | sc.MS_REC)

    def mount_all(self) -> None:
        for index, m in enumerate(self.mounts):
            try:
                self._mount(m)
            except OSError as e:
                raise RootfsError(e.errno, f"mounts[{index}] ({m.get('type') or 'bind'} on "
                                           f"{m.get('destination')}): {e.strerror or e}") from None

    def _mount(self, m: dict) -> None:
        fstype = m.get("type") or ""
        source = m.get("source") or fstype
        flags, clear, propagation, data = parse_mount_options(m.get("options") or [])
        del clear  # nothing to clear on a fresh mount
        destination = m["destination"] if m["destination"].startswith("/") else "/" + m["destination"]
        if fstype in ("proc", "sysfs") and os.path.islink(self.rootfs + destination):
            raise RootfsError(1, f"{fstype} mount destination {destination} is a symlink")
        target = resolve_in_root(self.rootfs, destination)
        if flags & sc.MS_BIND or fstype == "bind":
            self._bind(source, target, flags | sc.MS_BIND)
        elif fstype == "cgroup":
            self._mount_cgroup(target, flags)
        elif fstype == "sysfs" and not self.new_netns:
            # A sysfs instance belongs to a network namespace; with the host's network the
            # kernel refuses a new one, so show the host's (read-only unless asked otherwise).
            self._bind("/sys", target, flags | sc.MS_BIND | sc.MS_REC)
        elif fstype == "tmpfs" and "tmpcopyup" in (m.get("options") or []):
            self._tmpfs_copyup(source, target, flags, data)
        else:
            _ensure(self.rootfs, target, directory=True)
            with _Pinned(target) as pinned:
                sc.mount(source, pinned.proc, fstype, flags, data or None)
        if propagation:
            sc.mount(None, target, None, propagation)

    def _tmpfs_copyup(self, source: str, target: str, flags: int, data: str) -> None:
        """tmpfs that starts with what the image has at that path (podman asks for this for
        its tmpfs mounts): mounted aside, filled, then moved over the directory."""
        import shutil
        import tempfile

        _ensure(self.rootfs, target, directory=True)
        staging = tempfile.mkdtemp(prefix=".orlop-tmpcopyup-", dir=os.path.dirname(target))
        try:
            sc.mount(source, staging, "tmpfs", flags & ~sc.MS_RDONLY, data or None)
            shutil.copytree(target, staging, symlinks=True, dirs_exist_ok=True, copy_function=_copy_with_owner)
            _copy_owner_and_mode(target, staging)
            if flags & sc.MS_RDONLY:
                remount_bind(staging, sc.MS_RDONLY)
            with _Pinned(target) as pinned:
                sc.mount(staging, pinned.proc, None, sc.MS_MOVE)
        finally:
            os.rmdir(staging)

    def _bind(self, source: str, target: str, flags: int) -> None:
        if not source.startswith("/"):
            source = os.path.join(self.bundle, source)
        _ensure(self.rootfs, target, directory=os.path.isdir(source))
        with _Pinned(target) as pinned:
            sc.mount(source, pinned.proc, None, sc.MS_BIND | (flags & sc.MS_REC))
        if flags & ~(sc.MS_BIND | sc.MS_REC):
            # The pinned fd names the directory under the new mount; pin the mount itself.
            with _Pinned(target) as mounted:
                remount_bind(mounted.proc, flags)

    def _mount_cgroup(self, target: str, flags: int) -> None:
        """/sys/fs/cgroup showing the container's own cgroups (v2 directly; v1 one dir per hierarchy)."""
        _ensure(self.rootfs, target, directory=True)
        if self.before_cgroup_mount and self.new_cgroupns:
            self.before_cgroup_mount()  # a fresh cgroupfs is rooted where we are now
        hierarchies = _cgroup_mounts()
        if len(hierarchies) == 1 and hierarchies[0][1] == "cgroup2":
            mountpoint, fstype, _ = hierarchies[0]
            self._mount_one_cgroup(target, fstype, "", self.cgroup_paths.get("", mountpoint), flags)
            return
        with _Pinned(target) as pinned:
            sc.mount("tmpfs", pinned.proc, "tmpfs", sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC, "mode=755")
        for mountpoint, fstype, options in hierarchies:
            if fstype == "cgroup2":
                continue  # hybrid host: the container gets the v1 hierarchies (as with runc)
            name = os.path.basename(mountpoint)
            own = next((p for p in self.cgroup_paths.values()
                        if p == mountpoint or p.startswith(mountpoint + "/")), None)
            if own is None:
                continue
            sub = os.path.join(target, name)
            os.mkdir(sub, 0o755)
            self._mount_one_cgroup(sub, fstype, options, own, flags)

    def _mount_one_cgroup(self, target: str, fstype: str, options: str, own: str, flags: int) -> None:
        flags &= ~(sc.MS_BIND | sc.MS_REC)
        if self.new_cgroupns:
            # In its own cgroup namespace a fresh mount is rooted at the container's cgroup.
            sc.mount(fstype, target, fstype, flags, options or None)
        else:
            sc.mount(own, target, None, sc.MS_BIND | sc.MS_REC)
            remount_bind(target, flags | sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC)

    def create_devices(self) -> None:
        """Default devices plus linux.devices; with the host's /dev bind-mounted, nothing."""
        if self.host_dev:
            return
        devices = [{"path": p, "type": t, "major": ma, "minor": mi, "fileMode": 0o666, "uid": 0, "gid": 0}
                   for p, t, ma, mi in DEFAULT_DEVICES]
        devices += (self.spec.get("linux") or {}).get("devices") or []
        old_umask = os.umask(0)
        try:
            for device in devices:
                self._create_device(device)
        finally:
            os.umask(old_umask)
        for source, link in DEV_SYMLINKS:
            self._symlink(source, link)
        if os.path.exists("/proc/kcore"):
            self._symlink("/proc/kcore", "/dev/core")
        ptmx = resolve_in_root(self.rootfs, "/dev/ptmx")
        if os.path.lexists(ptmx):
            os.unlink(ptmx)
        os.symlink("pts/ptmx", ptmx)

    def _symlink(self, source: str, link: str) -> None:
        host = resolve_in_root(self.rootfs, link)
        if not os.path.lexists(host):
            os.symlink(source, host)

    def _create_device(self, device: dict) -> None:
        target = resolve_in_root(self.rootfs, device["path"])
        kind = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}[device["type"]]
        mode = device.get("fileMode", 0o666) & 0o7777
        os.makedirs(os.path.dirname(target), 0o755, exist_ok=True)
        if os.path.lexists(target):
            if os.path.isdir(target) or os.path.islink(target):
                raise RootfsError(17, f"cannot create device {device['path']}: a directory or symlink is there")
            os.unlink(target)
        if self.new_userns:
            # mknod is not allowed in a user namespace: bind the host's node instead (runc does).
            _ensure(self.rootfs, target, directory=False)
            with _Pinned(target) as pinned:
                sc.mount(device["path"], pinned.proc, None, sc.MS_BIND)
            return
        os.mknod(target, kind | mode, os.makedev(device.get("major", 0), device.get("minor", 0)))
        os.lchown(target, device.get("uid", 0) or 0, device.get("gid", 0) or 0)

    def bind_console(self, slave_path: str) -> None:
        """/dev/console is the container's terminal (as runc does)."""
        target = resolve_in_root(self.rootfs, "/dev/console")
        _ensure(self.rootfs, target, directory=False)
        with _Pinned(target) as pinned:
            sc.mount(slave_path, pinned.proc, None, sc.MS_BIND)

    def pivot(self, no_pivot: bool) -> None:
        """Make the rootfs `/`: pivot_root, or MS_MOVE + chroot (--no-pivot, e.g. on a ramfs)."""
        if no_pivot:
            os.chdir(self.rootfs)
            sc.mount(self.rootfs, "/", None, sc.MS_MOVE)
            os.chroot(".")
            os.chdir("/")
            return
        old_root = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.chdir(self.rootfs)
            sc.pivot_root(".", ".")
            # The old root is now stacked under the new one at "."; detach it, after making it
            # a slave so the unmount does not propagate to the host's mounts.
            os.fchdir(old_root)
            sc.mount(None, ".", None, sc.MS_SLAVE | sc.MS_REC)
            sc.umount(".", sc.MNT_DETACH)
        finally:
            os.close(old_root)
        os.chdir("/")

    # -- after pivot_root --------------------------------------------------------------------
    def finalize(self) -> None:
        linux = self.spec.get("linux") or {}
        for path in linux.get("readonlyPaths") or []:
            _readonly(path)
        for path in linux.get("maskedPaths") or []:
            _mask(path)
        if (self.spec.get("root") or {}).get("readonly"):
            remount_bind("/", sc.MS_RDONLY | sc.MS_BIND)
        propagation = linux.get("rootfsPropagation")
        if propagation in ("shared", "rshared", "unbindable", "runbindable"):
            sc.mount(None, "/", None, PROPAGATION_FLAGS[propagation])


def _copy_owner_and_mode(source: str, destination: str) -> None:
    info = os.lstat(source)
    os.lchown(destination, info.st_uid, info.st_gid)
    if not stat.S_ISLNK(info.st_mode):
        os.chmod(destination, stat.S_IMODE(info.st_mode))


def _copy_with_owner(source: str, destination: str) -> None:
    import shutil

    shutil.copy2(source, destination, follow_symlinks=False)
    _copy_owner_and_mode(source, destination)


def _readonly(path: str) -> None:
    try:
        sc.mount(path, path, None, sc.MS_BIND | sc.MS_REC)
    except FileNotFoundError:
        return
    remount_bind(path, sc.MS_RDONLY | sc.MS_REC)


def _mask(path: str) -> None:
    try:
        is_dir = stat.S_ISDIR(os.lstat(path).st_mode)
    except FileNotFoundError:
        return
    if is_dir:
        sc.mount("tmpfs", path, "tmpfs", sc.MS_RDONLY, None)
    else:
        sc.mount("/dev/null", path, None, sc.MS_BIND)


def _cgroup_mounts() -> list[tuple[str, str, str]]:
    """(mount point, fstype, superblock options) of the host's cgroup hierarchies."""
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            fstype = fields[sep + 1]
            if fstype not in ("cgroup", "cgroup2"):
                continue
            options = ",".join(o for o in fields[sep + 3].split(",") if o not in ("rw", "ro"))
            found.append((fields[4], fstype, options))
    return found
