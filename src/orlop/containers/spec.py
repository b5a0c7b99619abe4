"""A container's OCI config.json, made from its image config and its create request, with
Docker's defaults (moby daemon/oci_linux.go, oci/defaults.go): default capabilities and
seccomp profile, masked and read-only paths, the standard mounts, device rules, cgroup
limits from HostConfig, and the container's /etc/hosts, /etc/hostname, /etc/resolv.conf."""

from __future__ import annotations

import os

from orlop.containers import devices
from orlop.containers.seccomp_profile import DOCKER_DEFAULT_CAPS, for_container
from orlop.containers.validate import parse_bind
from orlop.errors import InvalidParameter
from orlop.oci.runtime_spec import CAPABILITIES

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MASKED_PATHS = ["/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
                "/sys/devices/virtual/powercap"]
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
# Device access a container has by default (moby oci/devices_linux.go: mknod anything, use the
# standard nodes and ptys).
DEFAULT_DEVICE_RULES = [
    {"allow": False, "access": "rwm"},
    {"allow": True, "type": "c", "access": "m"}, {"allow": True, "type": "b", "access": "m"},
    *({"allow": True, "type": "c", "major": major, "minor": minor, "access": "rwm"}
      for major, minor in ((1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 1), (5, 2), (10, 200))),
    {"allow": True, "type": "c", "major": 136, "access": "rwm"},
]
NAMESPACE_MODES = (("pid", "PidMode"), ("ipc", "IpcMode"), ("uts", "UTSMode"), ("network", "NetworkMode"))
RLIMIT_NAMES = {"core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc",
                "rss", "rtprio", "rttime", "sigpending", "stack", "as"}


def host_capabilities() -> list[str]:
    """The capabilities this host can grant: --privileged gets these, not every name known."""
    with open("/proc/self/status") as f:
        bounding = next(int(line.split()[1], 16) for line in f if line.startswith("CapBnd:"))
    return [name for bit, name in enumerate(CAPABILITIES) if bounding >> bit & 1]


def capabilities(host_config: dict) -> list[str]:
    if host_config.get("Privileged"):
        return host_capabilities()
    caps = list(DOCKER_DEFAULT_CAPS)
    known = set(CAPABILITIES)

    def normal(name: str) -> str:
        upper = name.upper()
        full = upper if upper.startswith("CAP_") or upper == "ALL" else "CAP_" + upper
        if full != "ALL" and full not in known:
            raise InvalidParameter(f"unknown capability: {name!r}")
        return full

    adds = [normal(c) for c in host_config.get("CapAdd") or []]
    drops = [normal(c) for c in host_config.get("CapDrop") or []]
    if "ALL" in drops:
        caps = []
    caps = [c for c in caps if c not in drops]
    for cap in host_capabilities() if "ALL" in adds else adds:
        if cap != "ALL" and cap not in caps:
            caps.append(cap)
    return caps


def merge_env(image_env: list[str], request_env: list[str], extra: dict[str, str]) -> list[str]:
    """Image ENV, overridden by the request's -e, as Docker merges them (by variable name)."""
    env: dict[str, str] = {}
    for entry in [*image_env, *request_env]:
        key = entry.split("=", 1)[0]
        env[key] = entry
    for key, value in extra.items():
        env.setdefault(key, f"{key}={value}")
    return list(env.values())


def process_env(base: list[str], overrides: list[str], extra: dict[str, str]) -> list[str]:
    """The environment a process gets: `overrides` merged over `base` and the defaults in
    `extra`, where a bare NAME (`-e NAME` with NAME unset on the client) removes NAME, as
    moby's ReplaceOrAppendEnvValues does."""
    return [entry for entry in merge_env(base, overrides, extra) if "=" in entry]


def resolve_user(rootfs: str, user: str) -> dict:
    """"name", "uid", "name:group", "uid:gid" → OCI user, looked up in the image's passwd/group."""
    name, _, group = user.partition(":")
    passwd = _table(os.path.join(rootfs, "etc/passwd"))
    groups = _table(os.path.join(rootfs, "etc/group"))
    uid = gid = 0
    username = None
    if not name:
        name = "0"
    if name.isdigit():
        uid = int(name)
        entry = next((e for e in passwd if len(e) > 3 and e[2] == name), None)
        gid = int(entry[3]) if entry else 0
        username = entry[0] if entry else None
    else:
        entry = next((e for e in passwd if e[0] == name), None)
        if entry is None:
            raise InvalidParameter(f"unable to find user {name}: no matching entries in passwd file")
        uid, gid, username = int(entry[2]), int(entry[3]), name
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            entry = next((e for e in groups if e[0] == group), None)
            if entry is None:
                raise InvalidParameter(f"unable to find group {group}: no matching entries in group file")
            gid = int(entry[2])
    additional = sorted({int(e[2]) for e in groups
                         if username and len(e) > 3 and username in e[3].split(",") and int(e[2]) != gid})
    result = {"uid": uid, "gid": gid}
    if additional:
        result["additionalGids"] = additional
    return result


def _table(path: str) -> list[list[str]]:
    try:
        with open(path) as f:
            return [line.rstrip("\n").split(":") for line in f if line.strip() and not line.startswith("#")]
    except OSError:
        return []


def _memory(value: int) -> int | None:
    return value if value and value > 0 else None


def resources(host_config: dict) -> dict:
    hc = host_config
    res: dict = {"devices": [{"allow": True, "access": "rwm"}] if hc.get("Privileged") else DEFAULT_DEVICE_RULES}
    memory = {k: v for k, v in (("limit", _memory(hc.get("Memory"))),
                                ("reservation", _memory(hc.get("MemoryReservation")))) if v}
    if hc.get("MemorySwap"):
        memory["swap"] = hc["MemorySwap"]  # -1: unlimited
    elif memory.get("limit"):
        memory["swap"] = memory["limit"] * 2  # Docker: swap as much again as the limit
    if hc.get("OomKillDisable"):
        memory["disableOOMKiller"] = True
    if hc.get("MemorySwappiness") is not None and hc["MemorySwappiness"] >= 0:
        memory["swappiness"] = hc["MemorySwappiness"]
    if memory:
        res["memory"] = memory
    cpu: dict = {}
    if hc.get("NanoCpus"):
        cpu["period"] = 100000
        cpu["quota"] = hc["NanoCpus"] * 100000 // 1_000_000_000
    if hc.get("CpuQuota"):
        cpu["quota"] = hc["CpuQuota"]
    if hc.get("CpuPeriod"):
        cpu["period"] = hc["CpuPeriod"]
    if hc.get("CpuShares"):
        cpu["shares"] = hc["CpuShares"]
    if hc.get("CpusetCpus"):
        cpu["cpus"] = hc["CpusetCpus"]
    if hc.get("CpusetMems"):
        cpu["mems"] = hc["CpusetMems"]
    if hc.get("CpuRealtimePeriod"):
        cpu["realtimePeriod"] = hc["CpuRealtimePeriod"]
    if hc.get("CpuRealtimeRuntime"):
        cpu["realtimeRuntime"] = hc["CpuRealtimeRuntime"]
    if cpu:
        res["cpu"] = cpu
    if hc.get("PidsLimit") and hc["PidsLimit"] > 0:
        res["pids"] = {"limit": hc["PidsLimit"]}
    if hc.get("BlkioWeight"):
        res["blockIO"] = {"weight": hc["BlkioWeight"]}
    return res


def rlimits(host_config: dict) -> list[dict]:
    out = []
    for ulimit in host_config.get("Ulimits") or []:
        name = str(ulimit.get("Name", "")).lower()
        if name not in RLIMIT_NAMES:
            raise InvalidParameter(f"invalid ulimit type: {name}")
        out.append({"type": "RLIMIT_" + name.upper(), "hard": int(ulimit.get("Hard", 0)),
                    "soft": int(ulimit.get("Soft", 0))})
    return out


def _mode(host_config: dict, key: str) -> str:
    value = host_config.get(key) or ""
    return "bridge" if key == "NetworkMode" and value in ("", "default") else value


def mounts(record: dict, files: dict[str, str]) -> list[dict]:
    hc = record["HostConfig"]
    privileged = hc.get("Privileged")
    shm = hc.get("ShmSize") or 64 << 20
    result = [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime",
                                                                               "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "rw" if privileged else "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime", "rw" if privileged else "ro"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", f"size={shm}"]},
    ]
    for destination, source in files.items():
        result.append({"destination": destination, "type": "bind", "source": source, "options": ["rbind", "rprivate"]})
    for destination, options in (hc.get("Tmpfs") or {}).items():
        opts = ["nosuid", "nodev", "noexec"] + [o for o in options.split(",") if o]
        result.append({"destination": destination, "type": "tmpfs", "source": "tmpfs", "options": opts})
    for bind in hc.get("Binds") or []:
        source, destination, options = parse_bind(bind)
        if not source.startswith("/"):
            continue  # a named volume: among record["Mounts"]
        if not os.path.exists(source):
            os.makedirs(source, 0o755)  # as Docker's -v does
        propagation = next((o for o in options if o.endswith(("private", "shared", "slave"))), "rprivate")
        result.append({"destination": destination, "type": "bind", "source": source,
                       "options": ["rbind", "ro" if "ro" in options else "rw", propagation]})
    own_binds = {parse_bind(b)[1] for b in hc.get("Binds") or []} | \
        {m["Target"] for m in hc.get("Mounts") or [] if m.get("Type") == "bind"}
    for volume in record.get("Mounts") or []:
        # Volumes, and binds inherited with --volumes-from (the container's own are above).
        if volume.get("Type") == "volume" or (volume.get("Type") == "bind" and
                                              volume["Destination"] not in own_binds):
            result.append({"destination": volume["Destination"], "type": "bind", "source": volume["Source"],
                           "options": ["rbind", "rw" if volume["RW"] else "ro", "rprivate"]})
    for mount in hc.get("Mounts") or []:
        kind = mount.get("Type")
        if kind == "volume":
            continue  # among record["Mounts"]
        if kind == "bind":
            result.append({"destination": mount["Target"], "type": "bind", "source": mount["Source"],
                           "options": ["rbind", "ro" if mount.get("ReadOnly") else "rw", "rprivate"]})
        elif kind == "tmpfs":
            opts = ["nosuid", "nodev", "noexec"]
            size = (mount.get("TmpfsOptions") or {}).get("SizeBytes")
            if size:
                opts.append(f"size={size}")
            result.append({"destination": mount["Target"], "type": "tmpfs", "source": "tmpfs", "options": opts})
        else:
            raise InvalidParameter(f"mount type {kind!r} is not supported yet (bind and tmpfs are)")
    return result


def console_size(value) -> dict | None:
    """A client's [height, width] (the docker CLI sends its terminal's at create and exec
    create, so that the first program sees the right size before any resize arrives)."""
    if isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) and 0 < v < 65536 for v in value):
        return {"height": value[0], "width": value[1]}
    return None


def generate(record: dict, shared_namespaces: dict[str, str], rootfs: str, files: dict[str, str],
             seccomp_profile: dict | None, daemon_env: list[str] = ()) -> dict:
    """config.json for `record` (a container record: Config, HostConfig, Id); namespaces
    in `shared_namespaces` ({"network": "/proc/<pid>/ns/net"}) are joined, not made."""
    config, hc = record["Config"], record["HostConfig"]
    args = [*(config.get("Entrypoint") or []), *(config.get("Cmd") or [])]
    if not args:
        raise InvalidParameter("no command specified")
    hostname = os.uname().nodename if _mode(hc, "UTSMode") == "host" else config.get("Hostname") or record["Id"][:12]
    extra = {"PATH": DEFAULT_PATH, "HOSTNAME": hostname}
    if config.get("Tty"):
        extra["TERM"] = "xterm"
    caps = capabilities(hc)
    process = {
        "terminal": bool(config.get("Tty")),
        "user": resolve_user(rootfs, config.get("User") or ""),
        "args": args,
        "env": process_env(list(daemon_env), config.get("Env") or [], extra),  # links' env, then -e
        "cwd": config.get("WorkingDir") or "/",
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
        "noNewPrivileges": "no-new-privileges" in (hc.get("SecurityOpt") or [])
                           or "no-new-privileges:true" in (hc.get("SecurityOpt") or []),
    }
    size = console_size(hc.get("ConsoleSize")) if config.get("Tty") else None
    if size:
        process["consoleSize"] = size
    if hc.get("OomScoreAdj"):
        process["oomScoreAdj"] = hc["OomScoreAdj"]
    limits = rlimits(hc)
    if limits:
        process["rlimits"] = limits
    for group in hc.get("GroupAdd") or []:
        gid = int(group) if str(group).isdigit() else next(
            (int(e[2]) for e in _table(os.path.join(rootfs, "etc/group")) if e[0] == group), None)
        if gid is None:
            raise InvalidParameter(f"unable to find group {group}")
        process["user"].setdefault("additionalGids", []).append(gid)
    namespaces = [{"type": "mount"}]
    for kind, key in NAMESPACE_MODES:
        mode = _mode(hc, key)
        if mode == "host":
            continue
        if mode.startswith("container:"):
            if kind not in shared_namespaces:
                raise InvalidParameter(f"{key} {mode!r}: the container to join is not known")
            namespaces.append({"type": kind, "path": shared_namespaces[kind]})
            continue
        namespaces.append({"type": kind})
    if _mode(hc, "CgroupnsMode") == "private" or (not _mode(hc, "CgroupnsMode") and os.path.exists(
            "/sys/fs/cgroup/cgroup.controllers")):
        namespaces.append({"type": "cgroup"})  # Docker's default on cgroup v2 hosts
    linux = {
        "namespaces": namespaces,
        "resources": resources(hc),
        # --cgroup-parent (or daemon.json's cgroup-parent), else orlop's own, as dockerd's /docker
        "cgroupsPath": f"/{(hc.get('CgroupParent') or 'orlop').strip('/')}/{record['Id']}",
        "sysctl": dict(hc.get("Sysctls") or {}),
    }
    nodes, device_rules = devices.for_container(hc)
    if nodes:
        linux["devices"] = nodes
    if device_rules:
        linux["resources"]["devices"] = [*linux["resources"]["devices"], *device_rules]
    security = hc.get("SecurityOpt") or []
    if not hc.get("Privileged"):
        linux["maskedPaths"] = MASKED_PATHS
        linux["readonlyPaths"] = READONLY_PATHS
        if seccomp_profile is not None and "seccomp=unconfined" not in security and "seccomp:unconfined" not in security:
            linux["seccomp"] = for_container(seccomp_profile, caps)
    generated = {
        "ociVersion": "1.0.2-dev",
        "process": process,
        "root": {"path": rootfs, "readonly": bool(hc.get("ReadonlyRootfs"))},
        "hostname": config.get("Hostname") or record["Id"][:12],
        "mounts": mounts(record, files),
        "linux": linux,
    }
    if _mode(hc, "UTSMode") == "host":
        del generated["hostname"]  # the host's own: a hostname needs a UTS namespace of its own
    if hc.get("Init"):
        _with_init(generated)
    return generated


def init_binary() -> str:
    """The init run as PID 1 for --init: Docker's docker-init (tini) if installed, else
    Debian's static tini; statically linked, as it runs from the container's root."""
    import shutil

    for name in ("docker-init", "tini-static"):
        path = shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/libexec/docker:/usr/bin:/usr/sbin")
        if path:
            return path
    raise InvalidParameter("--init: no init binary found (install tini: apt-get install tini)")


def _with_init(config: dict) -> None:
    """--init: tini at /sbin/docker-init reaps zombies and forwards signals to the command,
    which it starts as its child (moby's WithInit)."""
    config["process"]["args"] = ["/sbin/docker-init", "--", *config["process"]["args"]]
    config["mounts"].append({"destination": "/sbin/docker-init", "type": "bind", "source": init_binary(),
                             "options": ["rbind", "ro", "rprivate"]})
