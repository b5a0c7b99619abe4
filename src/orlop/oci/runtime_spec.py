"""config.json of the OCI runtime spec (1.0 to 1.2): validation with errors that
name the field, and the kernel tables the runtime needs to act on it (mount
options, namespace clone flags, capabilities, rlimits, seccomp names).

validate() runs before anything is created, so a wrong bundle leaves nothing
behind. It follows the spec and, where they differ, runc (the runtime engines
are tested against): unknown properties are ignored (the spec's extensibility
rule), null counts as absent (as Go decodes it), and a wrong value anywhere is a
ConfigError naming its JSON path, e.g.
`config.json: linux.namespaces[2].type: unknown namespace type "foo" (...)`.

Imported on every `create`: only `os` at import time (json only on the error path).
"""

from __future__ import annotations

import os


class ConfigError(ValueError):
    """A wrong field of config.json; `path` is its JSON path, e.g. "process.args"."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"config.json: {path}: {message}")
        self.path = path
        self.message = message


# -- kernel tables ---------------------------------------------------------------------------------

# <linux/sched.h>
CLONE_NEWTIME = 0x00000080
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

NAMESPACE_FLAGS: dict[str, int] = {
    "cgroup": CLONE_NEWCGROUP, "ipc": CLONE_NEWIPC, "mount": CLONE_NEWNS, "network": CLONE_NEWNET,
    "pid": CLONE_NEWPID, "time": CLONE_NEWTIME, "user": CLONE_NEWUSER, "uts": CLONE_NEWUTS,
}
# The name of each kind under /proc/<pid>/ns/, for hints.
_NS_FILES = {"mount": "mnt", "network": "net"}

# <sys/mount.h>
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_SYNCHRONOUS = 0x10
MS_REMOUNT = 0x20
MS_MANDLOCK = 0x40
MS_DIRSYNC = 0x80
MS_NOSYMFOLLOW = 0x100
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_SILENT = 0x8000
MS_UNBINDABLE = 0x20000
MS_PRIVATE = 0x40000
MS_SLAVE = 0x80000
MS_SHARED = 0x100000
MS_RELATIME = 0x200000
MS_I_VERSION = 0x800000
MS_STRICTATIME = 0x1000000
MS_LAZYTIME = 0x2000000
_PROPAGATION_TYPES = MS_SHARED | MS_SLAVE | MS_PRIVATE | MS_UNBINDABLE

# <linux/mount.h>, for mount_setattr(2) with AT_RECURSIVE
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8
MOUNT_ATTR__ATIME = 0x70
MOUNT_ATTR_RELATIME = 0x0
MOUNT_ATTR_NOATIME = 0x10
MOUNT_ATTR_STRICTATIME = 0x20
MOUNT_ATTR_NODIRATIME = 0x80
MOUNT_ATTR_NOSYMFOLLOW = 0x200000

# Option -> (MS_* flags it sets, flags it clears), as mount(8) reads them.
MOUNT_FLAGS: dict[str, tuple[int, int]] = {
    "async": (0, MS_SYNCHRONOUS), "atime": (0, MS_NOATIME), "bind": (MS_BIND, 0), "defaults": (0, 0),
    "dev": (0, MS_NODEV), "diratime": (0, MS_NODIRATIME), "dirsync": (MS_DIRSYNC, 0), "exec": (0, MS_NOEXEC),
    "iversion": (MS_I_VERSION, 0), "lazytime": (MS_LAZYTIME, 0), "loud": (0, MS_SILENT),
    "mand": (MS_MANDLOCK, 0), "noatime": (MS_NOATIME, 0), "nodev": (MS_NODEV, 0),
    "nodiratime": (MS_NODIRATIME, 0), "noexec": (MS_NOEXEC, 0), "noiversion": (0, MS_I_VERSION),
    "nolazytime": (0, MS_LAZYTIME), "nomand": (0, MS_MANDLOCK), "norelatime": (0, MS_RELATIME),
    "nostrictatime": (0, MS_STRICTATIME), "nosuid": (MS_NOSUID, 0), "nosymfollow": (MS_NOSYMFOLLOW, 0),
    "rbind": (MS_BIND | MS_REC, 0), "relatime": (MS_RELATIME, 0), "remount": (MS_REMOUNT, 0),
    "ro": (MS_RDONLY, 0), "rw": (0, MS_RDONLY), "silent": (MS_SILENT, 0), "strictatime": (MS_STRICTATIME, 0),
    "suid": (0, MS_NOSUID), "symfollow": (0, MS_NOSYMFOLLOW), "sync": (MS_SYNCHRONOUS, 0),
}
PROPAGATION_FLAGS: dict[str, int] = {
    "private": MS_PRIVATE, "rprivate": MS_PRIVATE | MS_REC, "shared": MS_SHARED, "rshared": MS_SHARED | MS_REC,
    "slave": MS_SLAVE, "rslave": MS_SLAVE | MS_REC, "unbindable": MS_UNBINDABLE,
    "runbindable": MS_UNBINDABLE | MS_REC,
}
# Recursive options -> (MOUNT_ATTR_* to set, to clear) on every mount below the target.
# The atime modes are an enum: each one must clear the whole MOUNT_ATTR__ATIME field
# (or mount_setattr fails with EINVAL), and un-setting a mode means the kernel's default, relatime.
MOUNT_ATTRS: dict[str, tuple[int, int]] = {
    "rro": (MOUNT_ATTR_RDONLY, 0), "rrw": (0, MOUNT_ATTR_RDONLY),
    "rnosuid": (MOUNT_ATTR_NOSUID, 0), "rsuid": (0, MOUNT_ATTR_NOSUID),
    "rnodev": (MOUNT_ATTR_NODEV, 0), "rdev": (0, MOUNT_ATTR_NODEV),
    "rnoexec": (MOUNT_ATTR_NOEXEC, 0), "rexec": (0, MOUNT_ATTR_NOEXEC),
    "rnodiratime": (MOUNT_ATTR_NODIRATIME, 0), "rdiratime": (0, MOUNT_ATTR_NODIRATIME),
    "rnosymfollow": (MOUNT_ATTR_NOSYMFOLLOW, 0), "rsymfollow": (0, MOUNT_ATTR_NOSYMFOLLOW),
    "rnoatime": (MOUNT_ATTR_NOATIME, MOUNT_ATTR__ATIME), "rstrictatime": (MOUNT_ATTR_STRICTATIME, MOUNT_ATTR__ATIME),
    "rrelatime": (MOUNT_ATTR_RELATIME, MOUNT_ATTR__ATIME), "ratime": (MOUNT_ATTR_RELATIME, MOUNT_ATTR__ATIME),
    "rnorelatime": (MOUNT_ATTR_RELATIME, MOUNT_ATTR__ATIME),
    "rnostrictatime": (MOUNT_ATTR_RELATIME, MOUNT_ATTR__ATIME),
}
# Not for mount(2): the runtime acts on them itself.
MOUNT_EXTENSIONS = ("tmpcopyup",)
IDMAP_OPTIONS = ("idmap", "ridmap")
IDMAP_SUPPORTED = False  # id-mapped mounts (runtime-spec 1.2): refused until the runtime does them

# <linux/capability.h>, up to CAP_LAST_CAP of Linux 6.x
CAPABILITIES: dict[str, int] = {
    "CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_DAC_READ_SEARCH": 2, "CAP_FOWNER": 3, "CAP_FSETID": 4,
    "CAP_KILL": 5, "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_SETPCAP": 8, "CAP_LINUX_IMMUTABLE": 9,
    "CAP_NET_BIND_SERVICE": 10, "CAP_NET_BROADCAST": 11, "CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13,
    "CAP_IPC_LOCK": 14, "CAP_IPC_OWNER": 15, "CAP_SYS_MODULE": 16, "CAP_SYS_RAWIO": 17, "CAP_SYS_CHROOT": 18,
    "CAP_SYS_PTRACE": 19, "CAP_SYS_PACCT": 20, "CAP_SYS_ADMIN": 21, "CAP_SYS_BOOT": 22, "CAP_SYS_NICE": 23,
    "CAP_SYS_RESOURCE": 24, "CAP_SYS_TIME": 25, "CAP_SYS_TTY_CONFIG": 26, "CAP_MKNOD": 27, "CAP_LEASE": 28,
    "CAP_AUDIT_WRITE": 29, "CAP_AUDIT_CONTROL": 30, "CAP_SETFCAP": 31, "CAP_MAC_OVERRIDE": 32,
    "CAP_MAC_ADMIN": 33, "CAP_SYSLOG": 34, "CAP_WAKE_ALARM": 35, "CAP_BLOCK_SUSPEND": 36, "CAP_AUDIT_READ": 37,
    "CAP_PERFMON": 38, "CAP_BPF": 39, "CAP_CHECKPOINT_RESTORE": 40,
}
CAP_SETS = ("bounding", "effective", "inheritable", "permitted", "ambient")

# <asm-generic/resource.h>; Python's resource module lacks RLIMIT_LOCKS, so use these numbers.
RLIMITS: dict[str, int] = {
    "RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3, "RLIMIT_CORE": 4, "RLIMIT_RSS": 5,
    "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7, "RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9, "RLIMIT_LOCKS": 10,
    "RLIMIT_SIGPENDING": 11, "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13, "RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
}

HOOK_KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")

# The names libseccomp 2.5 knows (and linux.seccomp maps).
SECCOMP_ACTIONS = ("SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
                   "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP")
SECCOMP_OPERATORS = ("SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT",
                     "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE")
SECCOMP_ARCHS = ("SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM", "SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64",
                 "SCMP_ARCH_MIPS64N32", "SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64", "SCMP_ARCH_MIPSEL64N32",
                 "SCMP_ARCH_PPC", "SCMP_ARCH_PPC64", "SCMP_ARCH_PPC64LE", "SCMP_ARCH_RISCV64", "SCMP_ARCH_S390",
                 "SCMP_ARCH_S390X", "SCMP_ARCH_X32", "SCMP_ARCH_X86", "SCMP_ARCH_X86_64")
SECCOMP_KNOWN_FLAGS = ("SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                       "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV")
SECCOMP_SUPPORTED_FLAGS = SECCOMP_KNOWN_FLAGS[:3]

PERSONALITIES = {"LINUX": 0x0000, "LINUX32": 0x0008}  # <linux/personality.h>
SCHED_POLICIES = ("SCHED_OTHER", "SCHED_FIFO", "SCHED_RR", "SCHED_BATCH", "SCHED_ISO", "SCHED_IDLE",
                  "SCHED_DEADLINE")
SCHED_FLAGS = ("SCHED_FLAG_RESET_ON_FORK", "SCHED_FLAG_RECLAIM", "SCHED_FLAG_DL_OVERRUN",
               "SCHED_FLAG_KEEP_POLICY", "SCHED_FLAG_KEEP_PARAMS", "SCHED_FLAG_UTIL_CLAMP_MIN",
               "SCHED_FLAG_UTIL_CLAMP_MAX")
IOPRIO_CLASSES = ("IOPRIO_CLASS_RT", "IOPRIO_CLASS_BE", "IOPRIO_CLASS_IDLE")
SUPPORTED_VERSIONS = ((1, 0), (1, 1), (1, 2))


# -- mount options ---------------------------------------------------------------------------------

class MountOptions:
    """One mount's `options`, sorted into what mount(2) and mount_setattr(2) take.

    A recursive option (rro, rnosuid, ...) also applies to the mount itself, so it
    shows in `flags`/`clear` too; `attr_set`/`attr_clr` are for the submounts."""

    __slots__ = ("flags", "clear", "propagation", "attr_set", "attr_clr", "extensions", "idmap", "data")

    def __init__(self, options: list[str]) -> None:
        self.flags = self.clear = self.propagation = self.attr_set = self.attr_clr = 0
        self.extensions: set[str] = set()
        self.idmap = ""  # "idmap" or "ridmap" when asked for
        data = []
        for option in options:
            if option in MOUNT_FLAGS:
                self._flag(option)
            elif option in MOUNT_ATTRS:
                on, off = MOUNT_ATTRS[option]
                self.attr_set = (self.attr_set & ~off) | on
                self.attr_clr = (self.attr_clr & ~on) | off
                self._flag(option[1:])  # rro -> ro
            elif option in PROPAGATION_FLAGS:
                self.propagation |= PROPAGATION_FLAGS[option]
            elif option in MOUNT_EXTENSIONS:
                self.extensions.add(option)
            elif option in IDMAP_OPTIONS:
                self.idmap = option
            else:
                data.append(option)  # filesystem-specific: mount(2)'s data, as the spec says
        self.data = ",".join(data)

    def _flag(self, option: str) -> None:
        on, off = MOUNT_FLAGS[option]
        self.flags = (self.flags | on) & ~off
        self.clear = (self.clear | off) & ~on


def parse_mount_options(options: list[str]) -> tuple[int, int, int, str]:
    """(MS_* flags to set, MS_* flags to clear, propagation flags OR'd, data "a=b,c")."""
    parsed = MountOptions(options)
    return parsed.flags, parsed.clear, parsed.propagation, parsed.data


def parse_mount_attrs(options: list[str]) -> tuple[int, int]:
    """(MOUNT_ATTR_* to set, to clear) for mount_setattr(AT_RECURSIVE); (0, 0): nothing to do."""
    parsed = MountOptions(options)
    return parsed.attr_set, parsed.attr_clr


def namespace_clone_flag(kind: str) -> int:
    """The CLONE_NEW* flag of an OCI namespace type ("network" -> CLONE_NEWNET)."""
    try:
        return NAMESPACE_FLAGS[kind]
    except KeyError:
        raise ValueError(f"unknown namespace type {kind!r} (expected one of {', '.join(NAMESPACE_FLAGS)})") from None


# -- typed access with JSON paths ------------------------------------------------------------------

_I32 = (-(2**31), 2**31 - 1)
_U16 = (0, 2**16 - 1)
_U32 = (0, 2**32 - 1)
_I64 = (-(2**63), 2**63 - 1)
_U64 = (0, 2**64 - 1)
_ID = (0, 2**32 - 2)  # uid/gid: (uid_t)-1 means "unchanged" to setresuid(2)
_MAX_ID_MAP_LINES = 340  # the kernel's limit per uid_map/gid_map


def _show(value: object) -> str:
    """A value as JSON, shortened: for messages only."""
    import json  # on the error path only, so not imported with the module

    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _keyed(path: str, key: str) -> str:
    """The path of a map entry whose key may hold dots: linux.sysctl["net.ipv4.ip_forward"]."""
    return f'{path}["{key}"]' if '"' not in key and "\\" not in key else f"{path}[{_show(key)}]"


def _integer(value: object, path: str, bounds: tuple[int, int] = _I64) -> int:
    # JSON true is not 1 (bool is an int to Python), and 1.0 is not an integer (as Go decodes).
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(path, f"must be an integer, got {_show(value)}")
    low, high = bounds
    if not low <= value <= high:
        raise ConfigError(path, f"must be between {low} and {high}, got {value}")
    return value


def _boolean(value: object, path: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(path, f"must be true or false, got {_show(value)}")
    return value


def _string(value: object, path: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(path, f"must be a string, got {_show(value)}")
    if "\0" in value:
        raise ConfigError(path, "must not contain a NUL character")
    return value


def _object(value: object, path: str) -> dict:
    if not isinstance(value, dict):
        raise ConfigError(path, f"must be an object, got {_show(value)}")
    return value


def _array(value: object, path: str) -> list:
    if not isinstance(value, list):
        raise ConfigError(path, f"must be a list, got {_show(value)}")
    return value


def _strings(value: object, path: str) -> list[str]:
    if not isinstance(value, list):
        raise ConfigError(path, f"must be a list of strings, got {_show(value)}")
    for i, item in enumerate(value):
        _string(item, f"{path}[{i}]")
    return value


def _abspath(value: object, path: str) -> str:
    if not _string(value, path).startswith("/"):
        raise ConfigError(path, f"must be an absolute path, got {_show(value)}")
    return value


def _opt(obj: dict, key: str, path: str, check, *args):
    """obj[key] through `check`, or None when absent or null."""
    value = obj.get(key)
    return None if value is None else check(value, _join(path, key), *args)


def _req(obj: dict, key: str, path: str, check, *args):
    value = obj.get(key)
    if value is None:
        raise ConfigError(_join(path, key), "is required")
    return check(value, _join(path, key), *args)


def _sub(obj: dict, key: str, path: str) -> dict:
    return _opt(obj, key, path, _object) or {}


def _each(obj: dict, key: str, path: str):
    """(path, item) of the list obj[key], if any."""
    where = _join(path, key)
    for i, item in enumerate(_opt(obj, key, path, _array) or ()):
        yield f"{where}[{i}]", item


def _cpu_list(value: object, path: str) -> str:
    """A list of CPUs or memory nodes like "0-2,4", as cpuset takes it."""
    _string(value, path)
    for part in value.split(",") if value else ():
        low, dash, high = part.partition("-")
        if not _is_number(low) or (dash and (not _is_number(high) or int(high) < int(low))):
            raise ConfigError(path, f'must be a list like "0-2,4", got {_show(value)}')
    return value


def _is_number(text: str) -> bool:
    return text.isascii() and text.isdigit()


# -- validation ------------------------------------------------------------------------------------

def validate(spec: dict, bundle: str) -> None:
    """Check everything create will use; raise ConfigError naming the first wrong field."""
    _object(spec, "(top level)")
    _check_version(spec)
    _check_root(spec, bundle)
    linux = _sub(spec, "linux", "")
    namespaces = _check_namespaces(linux)
    ids = _check_id_mappings(linux, namespaces)
    _check_process(spec, ids)
    _check_names(spec, namespaces)
    _check_mounts(spec, bundle)
    _check_linux(linux, namespaces)
    _check_hooks(spec)
    _check_annotations(spec)
    if os.geteuid() != 0:
        _check_rootless(spec, namespaces, ids)


def _check_version(spec: dict) -> None:
    version = _req(spec, "ociVersion", "", _string)
    parts = version.partition("+")[0].partition("-")[0].split(".")  # SemVer: 1.0.2-dev, 1.2.0+build
    if len(parts) != 3 or not all(_is_number(p) for p in parts):
        raise ConfigError("ociVersion", f'must be a SemVer version like "1.2.0", got {_show(version)}')
    if (int(parts[0]), int(parts[1])) not in SUPPORTED_VERSIONS:
        raise ConfigError("ociVersion", f"{_show(version)} is not supported "
                                        "(orlop-runtime implements runtime-spec 1.0.0 to 1.2.x)")


def _check_root(spec: dict, bundle: str) -> None:
    root = _req(spec, "root", "", _object)
    path = _req(root, "path", "root", _string)
    if not path:
        raise ConfigError("root.path", "must name the rootfs directory (absolute or relative to the bundle)")
    host = os.path.normpath(os.path.join(bundle, path))  # an absolute path stays as it is
    if not os.path.isdir(host):
        problem = "is not a directory" if os.path.exists(host) else "does not exist"
        raise ConfigError("root.path", f"rootfs {host} {problem}")
    _opt(root, "readonly", "root", _boolean)


def _check_namespaces(linux: dict) -> dict[str, str]:
    """{type: path to join, or "" for a new one}."""
    namespaces: dict[str, str] = {}
    for where, entry in _each(linux, "namespaces", "linux"):
        _object(entry, where)
        kind = _req(entry, "type", where, _string)
        if kind not in NAMESPACE_FLAGS:
            raise ConfigError(f"{where}.type", f"unknown namespace type {_show(kind)} "
                                               f"(expected one of {', '.join(NAMESPACE_FLAGS)})")
        if kind in namespaces:
            raise ConfigError(f"{where}.type", f"the {kind} namespace is listed twice")
        path = _opt(entry, "path", where, _string) or ""
        if path and not path.startswith("/"):
            raise ConfigError(f"{where}.path", f"must be an absolute path, got {_show(path)}")
        if path and not os.path.exists(path):
            raise ConfigError(f"{where}.path", f"{path} does not exist (the namespace to join, "
                                               f"e.g. /proc/<pid>/ns/{_NS_FILES.get(kind, kind)})")
        namespaces[kind] = path
    return namespaces


def _check_id_mappings(linux: dict, namespaces: dict) -> dict[str, list[tuple[int, int, int]]]:
    """{"uid"/"gid": [(containerID, hostID, size)]} of a new user namespace."""
    ids = {kind: _id_ranges(linux, f"{kind}Mappings") for kind in ("uid", "gid")}
    if "user" not in namespaces:
        for kind, ranges in ids.items():
            if ranges:
                raise ConfigError(f"linux.{kind}Mappings", 'id mappings need a user namespace '
                                                           '(add {"type": "user"} to linux.namespaces)')
        return ids
    if namespaces["user"]:
        return {"uid": [], "gid": []}  # joined: the kernel holds its mappings
    for kind, ranges in ids.items():
        if not ranges:
            raise ConfigError(f"linux.{kind}Mappings", f"a new user namespace needs {kind}Mappings")
        if not _maps(ranges, 0):
            raise ConfigError(f"linux.{kind}Mappings", f"must map the container's root ({kind} 0)")
    return ids


def _id_ranges(linux: dict, key: str) -> list[tuple[int, int, int]]:
    ranges = []
    for where, mapping in _each(linux, key, "linux"):
        _object(mapping, where)
        inside = _req(mapping, "containerID", where, _integer, _U32)
        outside = _req(mapping, "hostID", where, _integer, _U32)
        size = _req(mapping, "size", where, _integer, (1, _U32[1]))
        if max(inside, outside) + size > 2**32:
            raise ConfigError(f"{where}.size", f"{size} ids from {max(inside, outside)} go past 4294967295")
        ranges.append((inside, outside, size))
    if len(ranges) > _MAX_ID_MAP_LINES:
        raise ConfigError(f"linux.{key}", f"the kernel takes at most {_MAX_ID_MAP_LINES} ranges")
    for side in (0, 1):  # neither the container's ids nor the host's may overlap (the kernel refuses)
        spans = sorted((r[side], r[side] + r[2]) for r in ranges)
        for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
            if start < end:
                raise ConfigError(f"linux.{key}", f"ranges overlap at {'hostID' if side else 'containerID'} {start}")
    return ranges


def _maps(ranges: list[tuple[int, int, int]], inside: int) -> bool:
    return any(start <= inside < start + size for start, _, size in ranges)


def _check_process(spec: dict, ids: dict) -> None:
    if spec.get("process") is None:
        raise ConfigError("process", "required to create a container (what to run, as whom, where)")
    process = _object(spec["process"], "process")
    args = _req(process, "args", "process", _strings)
    if not args:
        raise ConfigError("process.args", "must be a non-empty list of strings")
    if not args[0]:
        raise ConfigError("process.args[0]", "must name the program to run")
    for where, entry in _each(process, "env", "process"):
        key, equals, _ = _string(entry, where).partition("=")
        if not equals or not key:
            raise ConfigError(where, f"must be KEY=VALUE, got {_show(entry)}")
    _req(process, "cwd", "process", _abspath)
    _check_user(_sub(process, "user", "process"), ids)
    for key in ("terminal", "noNewPrivileges"):
        _opt(process, key, "process", _boolean)
    console = _sub(process, "consoleSize", "process")
    for key in ("height", "width"):
        _opt(console, key, "process.consoleSize", _integer, _U16)  # struct winsize holds shorts
    _check_rlimits(process)
    _opt(process, "oomScoreAdj", "process", _integer, (-1000, 1000))
    _check_capabilities(_sub(process, "capabilities", "process"))
    for key in ("apparmorProfile", "selinuxLabel"):
        _opt(process, key, "process", _string)
    _check_scheduler(process)
    io = _opt(process, "ioPriority", "process", _object)
    if io is not None:
        _one_of(_req(io, "class", "process.ioPriority", _string), IOPRIO_CLASSES, "process.ioPriority.class")
        _req(io, "priority", "process.ioPriority", _integer, (0, 7))
    affinity = _sub(process, "execCPUAffinity", "process")
    for key in ("initial", "final"):
        _opt(affinity, key, "process.execCPUAffinity", _cpu_list)


def _check_user(user: dict, ids: dict) -> None:
    for key in ("uid", "gid"):
        _check_mapped(ids, key, _opt(user, key, "process.user", _integer, _ID), f"process.user.{key}")
    for where, gid in _each(user, "additionalGids", "process.user"):
        _check_mapped(ids, "gid", _integer(gid, where, _ID), where)
    _opt(user, "umask", "process.user", _integer, (0, 0o777))


def _check_mapped(ids: dict, kind: str, number: int | None, where: str) -> None:
    # A new user namespace only (else no ranges): runc would fail later, in the container's init.
    if ids[kind] and number is not None and not _maps(ids[kind], number):
        raise ConfigError(where, f"{number} is not mapped in the container's user namespace "
                                 f"(linux.{kind}Mappings)")


def _check_rlimits(process: dict) -> None:
    seen = set()
    for where, rlimit in _each(process, "rlimits", "process"):
        _object(rlimit, where)
        kind = _req(rlimit, "type", where, _string)
        if kind not in RLIMITS:
            raise ConfigError(f"{where}.type", f"unknown rlimit {_show(kind)} (expected one of {', '.join(RLIMITS)})")
        if kind in seen:
            raise ConfigError(f"{where}.type", f"{kind} is set twice")
        seen.add(kind)
        soft = _req(rlimit, "soft", where, _integer, _U64)
        hard = _req(rlimit, "hard", where, _integer, _U64)
        if soft > hard:
            raise ConfigError(where, f"soft limit {soft} is above the hard limit {hard}")


def _check_capabilities(caps: dict) -> None:
    for kind in CAP_SETS:
        for where, name in _each(caps, kind, "process.capabilities"):
            if _string(name, where) not in CAPABILITIES:
                raise ConfigError(where, f"unknown capability {_show(name)}{_cap_hint(name)}")


def _cap_hint(name: str) -> str:
    guess = name.upper() if name.upper().startswith("CAP_") else "CAP_" + name.upper()
    if guess in CAPABILITIES:
        return f' (did you mean "{guess}"?)'
    return " (capabilities(7) names like \"CAP_NET_ADMIN\"; `orlop-runtime features` lists them)"


def _check_scheduler(process: dict) -> None:
    scheduler = _opt(process, "scheduler", "process", _object)
    if scheduler is None:
        return
    where = "process.scheduler"
    policy = _one_of(_req(scheduler, "policy", where, _string), SCHED_POLICIES, f"{where}.policy")
    _opt(scheduler, "nice", where, _integer, (-20, 19))
    for flag_where, flag in _each(scheduler, "flags", where):
        _one_of(_string(flag, flag_where), SCHED_FLAGS, flag_where)
    # As runc: priority is for the real-time policies, runtime/deadline/period for SCHED_DEADLINE.
    if _opt(scheduler, "priority", where, _integer, _I32) and policy not in ("SCHED_FIFO", "SCHED_RR"):
        raise ConfigError(f"{where}.priority", "is only for the SCHED_FIFO and SCHED_RR policies")
    for key in ("runtime", "deadline", "period"):
        if _opt(scheduler, key, where, _integer, _U64) and policy != "SCHED_DEADLINE":
            raise ConfigError(f"{where}.{key}", "is only for the SCHED_DEADLINE policy")


def _one_of(value: str, allowed, where: str) -> str:
    if value not in allowed:
        raise ConfigError(where, f"unknown value {_show(value)} (expected one of {', '.join(allowed)})")
    return value


def _check_names(spec: dict, namespaces: dict) -> None:
    for key in ("hostname", "domainname"):
        name = _opt(spec, key, "", _string)
        if not name:
            continue
        if len(name.encode()) > 64:
            raise ConfigError(key, "must be at most 64 bytes (the kernel's limit)")
        # As runc: a uts namespace of the container's own, new or joined, never the host's.
        if "uts" not in namespaces:
            raise ConfigError(key, 'cannot be set without a uts namespace (add {"type": "uts"} to linux.namespaces)')


def _check_mounts(spec: dict, bundle: str) -> None:
    for where, mount in _each(spec, "mounts", ""):
        _object(mount, where)
        if not _req(mount, "destination", where, _string):
            raise ConfigError(f"{where}.destination", "must not be empty")  # relative: taken from / (as runc)
        fstype = _opt(mount, "type", where, _string) or ""
        source = _opt(mount, "source", where, _string) or ""
        options = MountOptions(_opt(mount, "options", where, _strings) or [])
        kinds = options.propagation & _PROPAGATION_TYPES
        if kinds & (kinds - 1):
            raise ConfigError(f"{where}.options", "more than one propagation type (shared, slave, private, "
                                                  "unbindable): a mount has one")
        if not IDMAP_SUPPORTED and (options.idmap or mount.get("uidMappings") is not None
                                    or mount.get("gidMappings") is not None):
            raise ConfigError(where, "id-mapped mounts (idmap, ridmap, uidMappings, gidMappings) are not "
                                     "supported by orlop-runtime")
        if options.flags & MS_BIND or fstype == "bind":
            _check_bind_source(source, f"{where}.source", bundle)
        elif not fstype:
            raise ConfigError(f"{where}.type", 'must name a filesystem type (e.g. "tmpfs"), or the options '
                                               "must include bind or rbind")


def _check_bind_source(source: str, where: str, bundle: str) -> None:
    # Mounts are made before any hook runs, so the source must exist now.
    if not source:
        raise ConfigError(where, "a bind mount needs a source")
    host = os.path.join(bundle, source)  # relative to the bundle, as the spec says
    if not os.path.exists(host):
        raise ConfigError(where, f"bind mount source {host} does not exist")


def _check_linux(linux: dict, namespaces: dict) -> None:
    _check_devices(linux)
    _opt(linux, "cgroupsPath", "linux", _string)
    _check_resources(_sub(linux, "resources", "linux"))
    _check_sysctl(_sub(linux, "sysctl", "linux"), namespaces)
    for kind in ("maskedPaths", "readonlyPaths"):
        paths = [_abspath(path, where) for where, path in _each(linux, kind, "linux")]
        if paths and "mount" not in namespaces:
            raise ConfigError(f"linux.{kind}", 'needs a mount namespace (add {"type": "mount"})')
    propagation = _opt(linux, "rootfsPropagation", "linux", _string)
    if propagation:
        _one_of(propagation, tuple(PROPAGATION_FLAGS), "linux.rootfsPropagation")
    _check_seccomp(_opt(linux, "seccomp", "linux", _object))
    personality = _opt(linux, "personality", "linux", _object)
    if personality is not None:
        _one_of(_req(personality, "domain", "linux.personality", _string), tuple(PERSONALITIES),
                "linux.personality.domain")
        _opt(personality, "flags", "linux.personality", _strings)
    _check_time_offsets(_sub(linux, "timeOffsets", "linux"), namespaces)
    rdt = _sub(linux, "intelRdt", "linux")
    for key in ("l3CacheSchema", "memBwSchema", "schemata"):
        if rdt.get(key):
            raise ConfigError(f"linux.intelRdt.{key}", "Intel RDT is not supported by orlop-runtime")


def _check_devices(linux: dict) -> None:
    for where, device in _each(linux, "devices", "linux"):
        _object(device, where)
        _req(device, "path", where, _abspath)
        kind = _one_of(_req(device, "type", where, _string), ("c", "b", "u", "p"), f"{where}.type")
        if kind != "p":
            for key in ("major", "minor"):
                _req(device, key, where, _integer, _U32)
        _opt(device, "fileMode", where, _integer, _U32)  # may carry S_IFMT bits: the runtime masks them
        for key in ("uid", "gid"):
            _opt(device, key, where, _integer, _U32)


# Integer fields of linux.resources: section -> {field: (low, high)}; Go's types, and
# -1 where runc reads it as "unlimited" or "unset".
_RESOURCE_INTEGERS = {
    "memory": {"limit": _I64, "reservation": _I64, "swap": _I64, "kernel": _I64, "kernelTCP": _I64,
               "swappiness": (-1, 100)},
    "cpu": {"shares": _U64, "quota": _I64, "burst": _U64, "period": _U64, "realtimeRuntime": _I64,
            "realtimePeriod": _U64, "idle": _I64},
    "pids": {"limit": _I64},
    "blockIO": {"weight": _U16, "leafWeight": _U16},
    "network": {"classID": _U32},
}
_RESOURCE_BOOLEANS = {"memory": ("disableOOMKiller", "useHierarchy", "checkBeforeUpdate")}
_THROTTLES = ("throttleReadBpsDevice", "throttleWriteBpsDevice", "throttleReadIOPSDevice",
              "throttleWriteIOPSDevice")


def _check_resources(resources: dict) -> None:
    path = "linux.resources"
    for section, fields in _RESOURCE_INTEGERS.items():
        values = _sub(resources, section, path)
        for key, bounds in fields.items():
            _opt(values, key, f"{path}.{section}", _integer, bounds)
        for key in _RESOURCE_BOOLEANS.get(section, ()):
            _opt(values, key, f"{path}.{section}", _boolean)
    _check_swap(_sub(resources, "memory", path))
    cpu = _sub(resources, "cpu", path)
    for key in ("cpus", "mems"):
        _opt(cpu, key, f"{path}.cpu", _cpu_list)
    _check_block_io(_sub(resources, "blockIO", path))
    for where, limit in _each(resources, "hugepageLimits", path):
        _object(limit, where)
        _req(limit, "pageSize", where, _string)
        _req(limit, "limit", where, _integer, _U64)
    for where, priority in _each(_sub(resources, "network", path), "priorities", f"{path}.network"):
        _object(priority, where)
        _req(priority, "name", where, _string)
        _req(priority, "priority", where, _integer, _U32)
    for name, limits in _sub(resources, "rdma", path).items():
        where = _keyed(f"{path}.rdma", name)
        for key in ("hcaHandles", "hcaObjects"):
            _opt(_object(limits, where), key, where, _integer, _U32)
    for name, value in _sub(resources, "unified", path).items():
        _string(value, _keyed(f"{path}.unified", name))
    _check_device_rules(resources)


def _check_swap(memory: dict) -> None:
    # memory.swap is memory+swap (v1's memsw): with a limit of its own it must not be below it.
    limit, swap = memory.get("limit") or 0, memory.get("swap") or 0
    if swap > 0 and not limit > 0:
        raise ConfigError("linux.resources.memory.swap", f"{swap} needs a memory.limit too (swap counts memory+swap)")
    if swap > 0 and swap < limit:
        raise ConfigError("linux.resources.memory.swap", f"{swap} is below memory.limit {limit} "
                                                         "(swap counts memory+swap)")


def _check_block_io(block_io: dict) -> None:
    path = "linux.resources.blockIO"
    for where, device in _each(block_io, "weightDevice", path):
        _device_numbers(device, where)
        for key in ("weight", "leafWeight"):
            _opt(device, key, where, _integer, _U16)
    for kind in _THROTTLES:
        for where, device in _each(block_io, kind, path):
            _device_numbers(device, where)
            _req(device, "rate", where, _integer, _U64)


def _device_numbers(device: object, where: str) -> None:
    _object(device, where)
    for key in ("major", "minor"):
        _req(device, key, where, _integer, _I64)


def _check_device_rules(resources: dict) -> None:
    for where, rule in _each(resources, "devices", "linux.resources"):
        _object(rule, where)
        _req(rule, "allow", where, _boolean)
        _one_of(_opt(rule, "type", where, _string) or "a", ("a", "b", "c"), f"{where}.type")
        for key in ("major", "minor"):
            _opt(rule, key, where, _integer, (-1, _I64[1]))  # -1: any
        access = _opt(rule, "access", where, _string) or ""
        if not access or set(access) - set("rwm"):  # runc refuses an empty one too
            raise ConfigError(f"{where}.access", f'must be made of r, w and m (e.g. "rwm"), got {_show(access)}')


# The ipc namespace's sysctls (besides fs.mqueue.*), as runc lists them.
_IPC_SYSCTLS = {"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
                "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"}


def _check_sysctl(sysctl: dict, namespaces: dict) -> None:
    for key, value in sysctl.items():
        where = _keyed("linux.sysctl", key)
        _string(value, where)
        if not key:
            raise ConfigError(where, "a sysctl needs a name")
        _check_sysctl_namespace(_dotted(key), where, namespaces)


def _dotted(key: str) -> str:
    """sysctl(8) also takes "/" as the separator: net/ipv4/conf/eth0.100/rp_filter."""
    slash, dot = key.find("/"), key.find(".")
    if slash == -1 or (dot != -1 and dot < slash):
        return key
    return key.translate(str.maketrans("./", "/."))


def _check_sysctl_namespace(name: str, where: str, namespaces: dict) -> None:
    # As runc: /proc/sys is only partly namespaced; a sysctl is allowed only where the
    # container's own namespace holds it, else it would change the host.
    if name in _IPC_SYSCTLS or name.startswith("fs.mqueue."):
        if "ipc" not in namespaces:
            raise ConfigError(where, 'needs an ipc namespace, or it would change the host\'s (add {"type": "ipc"})')
    elif name.startswith("net."):
        if "network" not in namespaces or _is_host_netns(namespaces["network"]):
            raise ConfigError(where, "not allowed in the host's network namespace")
    elif name in ("kernel.domainname", "kernel.hostname") and "uts" in namespaces:
        if name == "kernel.hostname":  # namespaced, but the OCI field says it (as runc)
            raise ConfigError(where, 'conflicts with the "hostname" field: set the hostname there')
    else:
        raise ConfigError(where, "is not in a namespace of the container's own: it would change the host")


def _is_host_netns(path: str) -> bool:
    """Whether joining `path` means our own network namespace ("" is a new one)."""
    if not path:
        return False
    ours, theirs = os.stat("/proc/self/ns/net"), os.stat(path)
    return (ours.st_dev, ours.st_ino) == (theirs.st_dev, theirs.st_ino)


def _check_seccomp(profile: dict | None) -> None:
    if profile is None:
        return
    path = "linux.seccomp"
    default = _opt(profile, "defaultAction", path, _string) or ""
    rules = list(_each(profile, "syscalls", path))
    if not default and not rules:
        return  # as runc: an empty profile means no seccomp
    notify = _one_of(default, SECCOMP_ACTIONS, f"{path}.defaultAction") == "SCMP_ACT_NOTIFY"
    _opt(profile, "defaultErrnoRet", path, _integer, _U32)
    for where, arch in _each(profile, "architectures", path):
        _one_of(_string(arch, where), SECCOMP_ARCHS, where)
    for where, flag in _each(profile, "flags", path):
        if _one_of(_string(flag, where), SECCOMP_KNOWN_FLAGS, where) not in SECCOMP_SUPPORTED_FLAGS:
            raise ConfigError(where, f"{flag} is not supported by orlop-runtime")
    for where, rule in rules:
        notify |= _check_syscall_rule(rule, where)
    listener = _opt(profile, "listenerPath", path, _string)
    _opt(profile, "listenerMetadata", path, _string)
    if notify and not listener:
        raise ConfigError(f"{path}.listenerPath", "SCMP_ACT_NOTIFY needs a listenerPath (the unix socket "
                                                  "that receives the notify fd)")


def _check_syscall_rule(rule: object, where: str) -> bool:
    """Check one linux.seccomp.syscalls entry; True if it notifies."""
    _object(rule, where)
    names = _req(rule, "names", where, _strings)
    if not names or "" in names:
        raise ConfigError(f"{where}.names", "must be a non-empty list of syscall names")
    action = _one_of(_req(rule, "action", where, _string), SECCOMP_ACTIONS, f"{where}.action")
    if action == "SCMP_ACT_NOTIFY" and "write" in names:
        raise ConfigError(f"{where}.action", "SCMP_ACT_NOTIFY cannot be used for write (as runc: the "
                                             "runtime writes to the container while the filter is on)")
    _opt(rule, "errnoRet", where, _integer, _U32)
    for arg_where, arg in _each(rule, "args", where):
        _object(arg, arg_where)
        _req(arg, "index", arg_where, _integer, (0, 5))
        for key in ("value", "valueTwo"):
            _opt(arg, key, arg_where, _integer, _U64)
        _one_of(_req(arg, "op", arg_where, _string), SECCOMP_OPERATORS, f"{arg_where}.op")
    return action == "SCMP_ACT_NOTIFY"


def _check_time_offsets(offsets: dict, namespaces: dict) -> None:
    if not offsets:
        return
    if "time" not in namespaces:
        raise ConfigError("linux.timeOffsets", 'needs a time namespace (add {"type": "time"} to linux.namespaces)')
    if namespaces["time"]:
        raise ConfigError("linux.timeOffsets", "can only be set on a new time namespace, not on one joined by path")
    for clock, offset in offsets.items():
        where = _keyed("linux.timeOffsets", clock)
        _one_of(clock, ("monotonic", "boottime"), where)
        _object(offset, where)
        _opt(offset, "secs", where, _integer, _I64)
        _opt(offset, "nanosecs", where, _integer, (0, 999_999_999))


def _check_hooks(spec: dict) -> None:
    hooks = _sub(spec, "hooks", "")
    for kind in HOOK_KINDS:
        for where, hook in _each(hooks, kind, "hooks"):
            _object(hook, where)
            _req(hook, "path", where, _abspath)
            for key in ("args", "env"):
                _opt(hook, key, where, _strings)
            timeout = _opt(hook, "timeout", where, _integer, _I64)
            if timeout is not None and timeout <= 0:
                raise ConfigError(f"{where}.timeout", f"must be a number of seconds greater than zero, got {timeout}")


def _check_annotations(spec: dict) -> None:
    for key, value in _sub(spec, "annotations", "").items():
        where = _keyed("annotations", key)
        if not key:
            raise ConfigError(where, "an annotation needs a name")
        _string(value, where)


def _check_rootless(spec: dict, namespaces: dict, ids: dict) -> None:
    """As runc when not run as root: a user namespace, and uid=/gid= mount options mapped in it."""
    if "user" not in namespaces:
        raise ConfigError("linux.namespaces", "running as a user other than root needs a user namespace "
                                              "(see `orlop-runtime spec --rootless`)")
    for where, mount in _each(spec, "mounts", ""):
        for option in MountOptions(mount.get("options") or []).data.split(","):
            kind, equals, number = option.partition("=")
            if equals and kind in ("uid", "gid") and _is_number(number) and ids[kind] \
                    and not _maps(ids[kind], int(number)):
                raise ConfigError(f"{where}.options", f"{option}: {kind} {number} is not mapped in the "
                                                      "container's user namespace")
