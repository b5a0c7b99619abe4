"""config.json of the OCI runtime spec (1.0-1.2): validation with errors that name
the field, and the tables the runtime needs to act on it (mount options,
namespace kinds, capability names, rlimits).

Validation runs before anything is created, so a wrong bundle leaves nothing
behind. Unknown keys are ignored (the spec is forward compatible); wrong types
or values anywhere are a ConfigError like
`config.json: linux.namespaces[2].type: unknown namespace type "foo" (...)`.
"""

from __future__ import annotations

import os


class ConfigError(ValueError):
    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"config.json: {path}: {message}")
        self.path = path


# <sys/mount.h>
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_SYNCHRONOUS = 0x1, 0x2, 0x4, 0x8, 0x10
MS_REMOUNT, MS_MANDLOCK, MS_DIRSYNC, MS_NOSYMFOLLOW = 0x20, 0x40, 0x80, 0x100
MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_REC = 0x400, 0x800, 0x1000, 0x4000
MS_UNBINDABLE, MS_PRIVATE, MS_SLAVE, MS_SHARED = 0x20000, 0x40000, 0x80000, 0x100000
MS_RELATIME, MS_STRICTATIME, MS_LAZYTIME = 0x200000, 0x1000000, 0x2000000

# option -> (flags it sets, flags it clears)
MOUNT_FLAGS: dict[str, tuple[int, int]] = {
    "ro": (MS_RDONLY, 0), "rw": (0, MS_RDONLY), "nosuid": (MS_NOSUID, 0), "suid": (0, MS_NOSUID),
    "nodev": (MS_NODEV, 0), "dev": (0, MS_NODEV), "noexec": (MS_NOEXEC, 0), "exec": (0, MS_NOEXEC),
    "sync": (MS_SYNCHRONOUS, 0), "async": (0, MS_SYNCHRONOUS), "dirsync": (MS_DIRSYNC, 0),
    "remount": (MS_REMOUNT, 0), "mand": (MS_MANDLOCK, 0), "nomand": (0, MS_MANDLOCK),
    "atime": (0, MS_NOATIME), "noatime": (MS_NOATIME, 0), "diratime": (0, MS_NODIRATIME),
    "nodiratime": (MS_NODIRATIME, 0), "bind": (MS_BIND, 0), "rbind": (MS_BIND | MS_REC, 0),
    "relatime": (MS_RELATIME, 0), "norelatime": (0, MS_RELATIME), "strictatime": (MS_STRICTATIME, 0),
    "nostrictatime": (0, MS_STRICTATIME), "lazytime": (MS_LAZYTIME, 0), "nolazytime": (0, MS_LAZYTIME),
    "symfollow": (0, MS_NOSYMFOLLOW), "nosymfollow": (MS_NOSYMFOLLOW, 0),
}
PROPAGATION_FLAGS: dict[str, int] = {
    "private": MS_PRIVATE, "rprivate": MS_PRIVATE | MS_REC, "shared": MS_SHARED, "rshared": MS_SHARED | MS_REC,
    "slave": MS_SLAVE, "rslave": MS_SLAVE | MS_REC, "unbindable": MS_UNBINDABLE,
    "runbindable": MS_UNBINDABLE | MS_REC,
}
# Accepted and handled elsewhere, or not applicable to the mount(2) call itself.
EXTENSION_OPTIONS = {"tmpcopyup", "idmap", "ridmap", "copy-symlink", "notmpcopyup"}

NAMESPACE_FLAGS: dict[str, int] = {
    "cgroup": 0x02000000, "ipc": 0x08000000, "mount": 0x00020000, "network": 0x40000000,
    "pid": 0x20000000, "time": 0x00000080, "user": 0x10000000, "uts": 0x04000000,
}
RLIMITS = {"RLIMIT_AS", "RLIMIT_CORE", "RLIMIT_CPU", "RLIMIT_DATA", "RLIMIT_FSIZE", "RLIMIT_LOCKS",
           "RLIMIT_MEMLOCK", "RLIMIT_MSGQUEUE", "RLIMIT_NICE", "RLIMIT_NOFILE", "RLIMIT_NPROC", "RLIMIT_RSS",
           "RLIMIT_RTPRIO", "RLIMIT_RTTIME", "RLIMIT_SIGPENDING", "RLIMIT_STACK"}
HOOK_KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")
CAP_SETS = ("bounding", "effective", "inheritable", "permitted", "ambient")
PROPAGATIONS = ("shared", "slave", "private", "unbindable", "rshared", "rslave", "rprivate", "runbindable")


def parse_mount_options(options: list[str]) -> tuple[int, int, int, str]:
    """(MS_* flags to set, flags to clear, propagation flags, fs-specific data "a=b,c")."""
    flags = clear = propagation = 0
    data = []
    for option in options:
        if option in MOUNT_FLAGS:
            on, off = MOUNT_FLAGS[option]
            flags = (flags | on) & ~off
            clear = (clear | off) & ~on
        elif option in PROPAGATION_FLAGS:
            propagation |= PROPAGATION_FLAGS[option]
        elif option in EXTENSION_OPTIONS:
            continue
        else:
            data.append(option)
    return flags, clear, propagation, ",".join(data)


def namespace_clone_flag(kind: str) -> int:
    return NAMESPACE_FLAGS[kind]


# -- validation ----------------------------------------------------------------------------------

def _type(value, expected: type | tuple, path: str, what: str):
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise ConfigError(path, f"must be {what}, got {type(value).__name__} {value!r}"[:200])
    return value


def _int(value, path: str, minimum: int | None = None, maximum: int | None = None) -> int:
    _type(value, int, path, "an integer")
    if isinstance(value, bool) or (minimum is not None and value < minimum) or (
            maximum is not None and value > maximum):
        bounds = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise ConfigError(path, f"must be {bounds}, got {value}")
    return value


def _str_list(value, path: str, nonempty: bool = False) -> list:
    _type(value, list, path, "a list of strings")
    for i, item in enumerate(value):
        _type(item, str, f"{path}[{i}]", "a string")
    if nonempty and not value:
        raise ConfigError(path, "must be a non-empty list of strings")
    return value


def _abs_path(value, path: str) -> str:
    _type(value, str, path, "a string")
    if not value.startswith("/"):
        raise ConfigError(path, f"must be an absolute path, got {value!r}")
    return value


def _obj(value, path: str) -> dict:
    return _type(value, dict, path, "an object")


def validate(spec: dict, bundle: str) -> None:
    """Check everything the runtime will use; raise ConfigError naming the first wrong field."""
    _obj(spec, "(top level)")
    version = spec.get("ociVersion")
    _type(version, str, "ociVersion", "a version string like \"1.0.2\"")
    if not version.startswith(("1.0", "1.1", "1.2")):
        raise ConfigError("ociVersion", f"unsupported version {version!r} (orlop-runtime supports 1.0 to 1.2)")
    _validate_root(spec.get("root"), bundle)
    if "process" in spec:
        _validate_process(_obj(spec["process"], "process"), "process")
    linux = _obj(spec.get("linux", {}), "linux")
    namespaces = _validate_namespaces(linux)
    for key in ("hostname", "domainname"):
        if key in spec:
            _type(spec[key], str, key, "a string")
            if spec[key] and not _is_new(namespaces, "uts"):
                raise ConfigError(key, "setting it needs a new uts namespace (add {\"type\": \"uts\"})")
    for i, mount in enumerate(_type(spec.get("mounts", []), list, "mounts", "a list")):
        _validate_mount(mount, f"mounts[{i}]", bundle)
    _validate_linux(linux, namespaces)
    _validate_hooks(_obj(spec.get("hooks", {}), "hooks"))
    annotations = _obj(spec.get("annotations", {}), "annotations")
    for key, value in annotations.items():
        _type(value, str, f"annotations[{key!r}]", "a string")


def _validate_root(root, bundle: str) -> None:
    _obj(root, "root")
    path = _type(root.get("path"), str, "root.path", "the rootfs directory (a string)")
    host = os.path.join(bundle, path)
    if not os.path.isdir(host):
        raise ConfigError("root.path", f"rootfs {host} does not exist or is not a directory")
    if "readonly" in root:
        _type(root["readonly"], bool, "root.readonly", "true or false")


def _validate_process(process: dict, path: str) -> None:
    _str_list(process.get("args"), f"{path}.args", nonempty=True)
    for i, entry in enumerate(_str_list(process.get("env", []), f"{path}.env")):
        if "=" not in entry:
            raise ConfigError(f"{path}.env[{i}]", f"must be KEY=VALUE, got {entry!r}")
    cwd = process.get("cwd", "/")
    _abs_path(cwd, f"{path}.cwd")
    user = _obj(process.get("user", {}), f"{path}.user")
    for key in ("uid", "gid"):
        if key in user:
            _int(user[key], f"{path}.user.{key}", 0, 2**32 - 2)
    for i, gid in enumerate(_type(user.get("additionalGids", []), list, f"{path}.user.additionalGids", "a list")):
        _int(gid, f"{path}.user.additionalGids[{i}]", 0, 2**32 - 2)
    if "umask" in user:
        _int(user["umask"], f"{path}.user.umask", 0, 0o777)
    for key in ("terminal", "noNewPrivileges"):
        if key in process:
            _type(process[key], bool, f"{path}.{key}", "true or false")
    if "consoleSize" in process:
        size = _obj(process["consoleSize"], f"{path}.consoleSize")
        for key in ("height", "width"):
            _int(size.get(key, 0), f"{path}.consoleSize.{key}", 0, 65535)
    seen = set()
    for i, rlimit in enumerate(_type(process.get("rlimits", []), list, f"{path}.rlimits", "a list")):
        where = f"{path}.rlimits[{i}]"
        _obj(rlimit, where)
        kind = rlimit.get("type")
        if kind not in RLIMITS:
            raise ConfigError(f"{where}.type", f"unknown rlimit {kind!r} (expected one of {', '.join(sorted(RLIMITS))})")
        if kind in seen:
            raise ConfigError(f"{where}.type", f"{kind} is set twice")
        seen.add(kind)
        soft = _int(rlimit.get("soft"), f"{where}.soft", 0, 2**64 - 1)
        hard = _int(rlimit.get("hard"), f"{where}.hard", 0, 2**64 - 1)
        if soft > hard:
            raise ConfigError(where, f"soft limit {soft} is above the hard limit {hard}")
    if "oomScoreAdj" in process:
        _int(process["oomScoreAdj"], f"{path}.oomScoreAdj", -1000, 1000)
    if "capabilities" in process:
        caps = _obj(process["capabilities"], f"{path}.capabilities")
        for kind, names in caps.items():
            if kind not in CAP_SETS:
                raise ConfigError(f"{path}.capabilities.{kind}", f"unknown set (expected one of {', '.join(CAP_SETS)})")
            _str_list(names, f"{path}.capabilities.{kind}")  # the names: checked by the runtime (linux.caps)
    for key in ("apparmorProfile", "selinuxLabel"):
        if key in process:
            _type(process[key], str, f"{path}.{key}", "a string")


def _validate_namespaces(linux: dict) -> dict[str, str | None]:
    namespaces: dict[str, str | None] = {}
    for i, ns in enumerate(_type(linux.get("namespaces", []), list, "linux.namespaces", "a list")):
        where = f"linux.namespaces[{i}]"
        _obj(ns, where)
        kind = ns.get("type")
        if kind not in NAMESPACE_FLAGS:
            raise ConfigError(f"{where}.type", f"unknown namespace type {kind!r} (expected one of "
                                               f"{', '.join(sorted(NAMESPACE_FLAGS))})")
        if kind in namespaces:
            raise ConfigError(f"{where}.type", f"the {kind} namespace is listed twice")
        path = ns.get("path")
        if path:
            _abs_path(path, f"{where}.path")
            if not os.path.exists(path):
                raise ConfigError(f"{where}.path", f"{path} does not exist")
        namespaces[kind] = path or None
    has_maps = bool(linux.get("uidMappings") or linux.get("gidMappings"))
    if _is_new(namespaces, "user") and not (linux.get("uidMappings") and linux.get("gidMappings")):
        raise ConfigError("linux.uidMappings", "a new user namespace needs uidMappings and gidMappings")
    if has_maps and "user" not in namespaces:
        raise ConfigError("linux.uidMappings", "id mappings need a user namespace (add {\"type\": \"user\"})")
    if "timeOffsets" in linux and not _is_new(namespaces, "time"):
        raise ConfigError("linux.timeOffsets", "time offsets need a new time namespace")
    return namespaces


def _is_new(namespaces: dict, kind: str) -> bool:
    return kind in namespaces and not namespaces[kind]


def _validate_mount(mount, path: str, bundle: str) -> None:
    _obj(mount, path)
    destination = _type(mount.get("destination"), str, f"{path}.destination", "a path")
    if not destination:
        raise ConfigError(f"{path}.destination", "must not be empty")
    options = _str_list(mount.get("options", []), f"{path}.options")
    for key in ("type", "source"):
        if key in mount:
            _type(mount[key], str, f"{path}.{key}", "a string")
    if mount.get("type") == "bind" or "bind" in options or "rbind" in options:
        source = mount.get("source")
        if not source:
            raise ConfigError(f"{path}.source", "a bind mount needs a source")
        host = source if source.startswith("/") else os.path.join(bundle, source)
        if not os.path.exists(host):
            raise ConfigError(f"{path}.source", f"bind mount source {host} does not exist")
    elif not mount.get("type"):
        raise ConfigError(f"{path}.type", "must name a filesystem type (or use the bind option)")


def _validate_linux(linux: dict, namespaces: dict) -> None:
    for kind in ("uidMappings", "gidMappings"):
        for i, m in enumerate(_type(linux.get(kind, []), list, f"linux.{kind}", "a list")):
            where = f"linux.{kind}[{i}]"
            _obj(m, where)
            for key in ("containerID", "hostID"):
                _int(m.get(key), f"{where}.{key}", 0, 2**32 - 1)
            _int(m.get("size"), f"{where}.size", 1, 2**32 - 1)
    for i, device in enumerate(_type(linux.get("devices", []), list, "linux.devices", "a list")):
        where = f"linux.devices[{i}]"
        _obj(device, where)
        _abs_path(device.get("path"), f"{where}.path")
        if device.get("type") not in ("c", "b", "u", "p"):
            raise ConfigError(f"{where}.type", f"must be c, b, u or p, got {device.get('type')!r}")
        if device["type"] != "p":
            for key in ("major", "minor"):
                _int(device.get(key), f"{where}.{key}", 0)
        for key in ("fileMode", "uid", "gid"):
            if device.get(key) is not None:
                _int(device[key], f"{where}.{key}", 0)
    if "cgroupsPath" in linux:
        _type(linux["cgroupsPath"], str, "linux.cgroupsPath", "a string")
    _validate_resources(_obj(linux.get("resources", {}), "linux.resources"))
    for key, value in _obj(linux.get("sysctl", {}), "linux.sysctl").items():
        _type(value, str, f"linux.sysctl[{key!r}]", "a string")
        _check_sysctl_namespace(key, namespaces)
    for kind in ("maskedPaths", "readonlyPaths"):
        for i, p in enumerate(_str_list(linux.get(kind, []), f"linux.{kind}")):
            _abs_path(p, f"linux.{kind}[{i}]")
    if linux.get("rootfsPropagation") and linux["rootfsPropagation"] not in PROPAGATIONS:
        raise ConfigError("linux.rootfsPropagation", f"must be one of {', '.join(PROPAGATIONS)}")
    if linux.get("seccomp") is not None:
        _obj(linux["seccomp"], "linux.seccomp")  # its contents: checked by the runtime (linux.seccomp)


def _check_sysctl_namespace(key: str, namespaces: dict) -> None:
    # As runc: a sysctl may only be set for a namespace the container owns.
    if key.startswith(("kernel.msg", "kernel.sem", "kernel.shm", "fs.mqueue.")):
        needed = "ipc"
    elif key.startswith("net."):
        needed = "network"
    elif key in ("kernel.hostname", "kernel.domainname"):
        needed = "uts"
    else:
        raise ConfigError(f"linux.sysctl[{key!r}]", "not namespaced: it would change the host (refused)")
    if not _is_new(namespaces, needed):
        raise ConfigError(f"linux.sysctl[{key!r}]", f"needs a new {needed} namespace")


def _validate_resources(resources: dict) -> None:
    memory = _obj(resources.get("memory", {}), "linux.resources.memory")
    for key in ("limit", "reservation", "swap", "kernel", "kernelTCP"):
        if memory.get(key) is not None:
            _int(memory[key], f"linux.resources.memory.{key}", -1)
    if memory.get("swappiness") is not None:
        _int(memory["swappiness"], "linux.resources.memory.swappiness", 0, 100)
    limit, swap = memory.get("limit"), memory.get("swap")
    if limit and swap and limit > 0 and 0 < swap < limit:
        raise ConfigError("linux.resources.memory.swap", f"memory+swap ({swap}) must not be below the limit ({limit})")
    cpu = _obj(resources.get("cpu", {}), "linux.resources.cpu")
    for key in ("shares", "period", "realtimePeriod"):
        if cpu.get(key) is not None:
            _int(cpu[key], f"linux.resources.cpu.{key}", 0)
    for key in ("quota", "realtimeRuntime", "burst", "idle"):
        if cpu.get(key) is not None:
            _int(cpu[key], f"linux.resources.cpu.{key}", -1)
    for key in ("cpus", "mems"):
        if cpu.get(key):
            _cpu_list(cpu[key], f"linux.resources.cpu.{key}")
    pids = _obj(resources.get("pids", {}), "linux.resources.pids")
    if pids.get("limit") is not None:
        _type(pids["limit"], int, "linux.resources.pids.limit", "an integer")
    blkio = _obj(resources.get("blockIO", {}), "linux.resources.blockIO")
    for key in ("weight", "leafWeight"):
        if blkio.get(key):
            _int(blkio[key], f"linux.resources.blockIO.{key}", 10, 1000)
    for i, rule in enumerate(_type(resources.get("devices", []), list, "linux.resources.devices", "a list")):
        where = f"linux.resources.devices[{i}]"
        _obj(rule, where)
        _type(rule.get("allow"), bool, f"{where}.allow", "true or false")
        if rule.get("type", "a") not in ("a", "b", "c"):
            raise ConfigError(f"{where}.type", f"must be a, b or c, got {rule.get('type')!r}")
        access = rule.get("access", "rwm")
        if not isinstance(access, str) or not set(access) <= set("rwm"):
            raise ConfigError(f"{where}.access", f"must be made of r, w and m, got {access!r}")
        for key in ("major", "minor"):
            if rule.get(key) is not None:
                _int(rule[key], f"{where}.{key}", -1)
    unified = _obj(resources.get("unified", {}), "linux.resources.unified")
    for key, value in unified.items():
        _type(value, str, f"linux.resources.unified[{key!r}]", "a string")
        if "/" in key or key.startswith("."):
            raise ConfigError(f"linux.resources.unified[{key!r}]", "must be a file name of the cgroup directory")


def _cpu_list(value, path: str) -> None:
    _type(value, str, path, 'a list like "0-2,4"')
    for part in value.split(","):
        low, _, high = part.strip().partition("-")
        if not low.isdigit() or (high and (not high.isdigit() or int(high) < int(low))):
            raise ConfigError(path, f'must be a list like "0-2,4", got {value!r}')


def _validate_hooks(hooks: dict) -> None:
    for kind, entries in hooks.items():
        if kind not in HOOK_KINDS:
            raise ConfigError(f"hooks.{kind}", f"unknown hook kind (expected one of {', '.join(HOOK_KINDS)})")
        for i, hook in enumerate(_type(entries, list, f"hooks.{kind}", "a list")):
            where = f"hooks.{kind}[{i}]"
            _obj(hook, where)
            _abs_path(hook.get("path"), f"{where}.path")
            _str_list(hook.get("args", []), f"{where}.args")
            _str_list(hook.get("env", []), f"{where}.env")
            if hook.get("timeout") is not None:
                _int(hook["timeout"], f"{where}.timeout", 1)
