"""The options of `run` and `create`, and the create request built from them exactly as
the docker CLI builds it (cli/command/container/opts.go): `Config` + `HostConfig` +
`NetworkingConfig`, every key in Go's field order, zero values included, so that the
daemon sees the same bytes from orlop as from docker."""

from __future__ import annotations

import os

from orlop.cli.errors import CommandError
from orlop.cli.flags import Spec, UsageError, flag

RUN_FLAGS = [
    flag("-a, --attach", "list", "Attach to STDIN, STDOUT or STDERR"),
    flag("--add-host", "list", "Add a custom host-to-IP mapping (host:ip)"),
    flag("--blkio-weight", "int", "Block IO (relative weight), between 10 and 1000, or 0 to disable (default 0)", 0),
    flag("--cap-add", "list", "Add Linux capabilities"),
    flag("--cap-drop", "list", "Drop Linux capabilities"),
    flag("--cgroup-parent", "string", "Optional parent cgroup for the container"),
    flag("--cgroupns", "string", "Cgroup namespace to use (host|private)"),
    flag("--cidfile", "string", "Write the container ID to the file"),
    flag("--cpu-period", "int", "Limit CPU CFS (Completely Fair Scheduler) period", 0),
    flag("--cpu-quota", "int", "Limit CPU CFS (Completely Fair Scheduler) quota", 0),
    flag("--cpu-rt-period", "int", "Limit CPU real-time period in microseconds", 0),
    flag("--cpu-rt-runtime", "int", "Limit CPU real-time runtime in microseconds", 0),
    flag("-c, --cpu-shares", "int", "CPU shares (relative weight)", 0),
    flag("--cpus", "string", "Number of CPUs", metavar="decimal"),
    flag("--cpuset-cpus", "string", "CPUs in which to allow execution (0-3, 0,1)"),
    flag("--cpuset-mems", "string", "MEMs in which to allow execution (0-3, 0,1)"),
    flag("-d, --detach", "bool", "Run container in background and print container ID"),
    flag("--detach-keys", "string", "Override the key sequence for detaching a container"),
    flag("--device", "list", "Add a host device to the container"),
    flag("--device-cgroup-rule", "list", "Add a rule to the cgroup allowed devices list"),
    flag("--dns", "list", "Set custom DNS servers"),
    flag("--dns-option", "list", "Set DNS options"),
    flag("--dns-search", "list", "Set custom DNS search domains"),
    flag("--domainname", "string", "Container NIS domain name"),
    flag("--entrypoint", "string", "Overwrite the default ENTRYPOINT of the image"),
    flag("-e, --env", "list", "Set environment variables"),
    flag("--env-file", "list", "Read in a file of environment variables"),
    flag("--expose", "list", "Expose a port or a range of ports"),
    flag("--group-add", "list", "Add additional groups to join"),
    flag("--health-cmd", "string", "Command to run to check health"),
    flag("--health-interval", "string", "Time between running the check (ms|s|m|h) (default 0s)", metavar="duration"),
    flag("--health-retries", "int", "Consecutive failures needed to report unhealthy", 0),
    flag("--health-start-interval", "string", "Time between running the check during the start period (ms|s|m|h) "
         "(default 0s)", metavar="duration"),
    flag("--health-start-period", "string", "Start period for the container to initialize before starting "
         "health-retries countdown (ms|s|m|h) (default 0s)", metavar="duration"),
    flag("--health-timeout", "string", "Maximum time to allow one check to run (ms|s|m|h) (default 0s)",
         metavar="duration"),
    flag("-h, --hostname", "string", "Container host name"),
    flag("--init", "bool", "Run an init inside the container that forwards signals and reaps processes"),
    flag("-i, --interactive", "bool", "Keep STDIN open even if not attached"),
    flag("--ip", "string", "IPv4 address (e.g., 172.30.100.104)"),
    flag("--ip6", "string", "IPv6 address (e.g., 2001:db8::33)"),
    flag("--ipc", "string", "IPC mode to use"),
    flag("--kernel-memory", "string", "Kernel memory limit (deprecated)", metavar="bytes"),
    flag("-l, --label", "list", "Set meta data on a container"),
    flag("--label-file", "list", "Read in a line delimited file of labels"),
    flag("--link", "list", "Add link to another container"),
    flag("--log-driver", "string", "Logging driver for the container"),
    flag("--log-opt", "list", "Log driver options"),
    flag("-m, --memory", "string", "Memory limit", metavar="bytes"),
    flag("--mac-address", "string", "Container MAC address (e.g., 92:d0:c6:0a:29:33)"),
    flag("--memory-reservation", "string", "Memory soft limit", metavar="bytes"),
    flag("--memory-swap", "string", "Swap limit equal to memory plus swap: '-1' to enable unlimited swap",
         metavar="bytes"),
    flag("--memory-swappiness", "int", "Tune container memory swappiness (0 to 100)", -1),
    flag("--mount", "list", "Attach a filesystem mount to the container", metavar="mount"),
    flag("--name", "string", "Assign a name to the container"),
    flag("--network, --net", "string", "Connect a container to a network", metavar="network"),
    flag("--network-alias", "list", "Add network-scoped alias for the container"),
    flag("--no-healthcheck", "bool", "Disable any container-specified HEALTHCHECK"),
    flag("--oom-kill-disable", "bool", "Disable OOM Killer"),
    flag("--oom-score-adj", "int", "Tune host's OOM preferences (-1000 to 1000)", 0),
    flag("--pid", "string", "PID namespace to use"),
    flag("--pids-limit", "int", "Tune container pids limit (set -1 for unlimited)", 0),
    flag("--platform", "string", "Set platform if server is multi-platform capable"),
    flag("--privileged", "bool", "Give extended privileges to this container"),
    flag("-p, --publish", "list", "Publish a container's port(s) to the host"),
    flag("-P, --publish-all", "bool", "Publish all exposed ports to random ports"),
    flag("--pull", "string", 'Pull image before running ("always", "missing", "never")', "missing"),
    flag("-q, --quiet", "bool", "Suppress the pull output"),
    flag("--read-only", "bool", "Mount the container's root filesystem as read only"),
    flag("--restart", "string", "Restart policy to apply when a container exits", "no"),
    flag("--rm", "bool", "Automatically remove the container and its associated anonymous volumes when it exits"),
    flag("--runtime", "string", "Runtime to use for this container"),
    flag("--security-opt", "list", "Security Options"),
    flag("--shm-size", "string", "Size of /dev/shm", metavar="bytes"),
    flag("--sig-proxy", "bool", "Proxy received signals to the process", True),
    flag("--stop-signal", "string", "Signal to stop the container"),
    flag("--stop-timeout", "int", "Timeout (in seconds) to stop a container"),
    flag("--sysctl", "list", "Sysctl options", metavar="map"),
    flag("--tmpfs", "list", "Mount a tmpfs directory"),
    flag("-t, --tty", "bool", "Allocate a pseudo-TTY"),
    flag("--ulimit", "list", "Ulimit options", metavar="ulimit"),
    flag("-u, --user", "string", "Username or UID (format: <name|uid>[:<group|gid>])"),
    flag("--userns", "string", "User namespace to use"),
    flag("--uts", "string", "UTS namespace to use"),
    flag("-v, --volume", "list", "Bind mount a volume"),
    flag("--volumes-from", "list", "Mount volumes from the specified container(s)"),
    flag("-w, --workdir", "string", "Working directory inside the container"),
]

CREATE_FLAGS = [f for f in RUN_FLAGS if f.dest not in ("detach", "detach_keys", "sig_proxy")]

RUN_SPEC = Spec("run", "orlop run [OPTIONS] IMAGE [COMMAND] [ARG...]", "Create and run a new container from an image",
                RUN_FLAGS, interspersed=False, min_args=1, aliases="orlop container run, orlop run")
CREATE_SPEC = Spec("create", "orlop create [OPTIONS] IMAGE [COMMAND] [ARG...]", "Create a new container",
                   CREATE_FLAGS, interspersed=False, min_args=1, aliases="orlop container create, orlop create")

_RESTART_POLICIES = ("no", "always", "unless-stopped", "on-failure")


class InvalidOption(CommandError):
    """A wrong option value: docker reports it like a daemon error, with exit status 125."""

    def __init__(self, message: str) -> None:
        super().__init__(message, 125)


def _read_kv_file(path: str, from_env: bool) -> list[str]:
    """docker's opts.ParseEnvFile / label files: `K=V` lines, `#` comments, blank lines;
    a bare `K` takes the value from the environment, or is dropped when unset."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise InvalidOption(f"open {path}: {os.strerror(e.errno) if e.errno else e}") from None
    out = []
    for number, raw in enumerate(lines, 1):
        line = raw.lstrip()
        if number == 1:
            line = line.lstrip("\ufeff")
        if not line or line.startswith("#"):
            continue
        key, eq, value = line.partition("=")
        if not key:
            raise InvalidOption(f"invalid variable: '{line}' has an empty name (in {path}, line {number})")
        if " " in key.rstrip() or "\t" in key:
            raise InvalidOption(f"variable '{key.strip()}' contains whitespaces (in {path}, line {number})")
        if eq:
            out.append(f"{key}={value}")
        elif from_env:
            name = key.strip()
            if name in os.environ:
                out.append(f"{name}={os.environ[name]}")
        else:
            out.append(key.strip())
    return out


def _env(opts) -> list[str] | None:
    variables: list[str] = []
    for path in opts.env_file:
        variables.extend(_read_kv_file(path, True))
    for value in opts.env:
        name, eq, _ = value.partition("=")
        if not name:
            raise InvalidOption(f"invalid environment variable: {value}")
        if not eq and name in os.environ:
            value = f"{name}={os.environ[name]}"
        variables.append(value)
    return variables or None


def _labels(opts) -> dict[str, str]:
    entries = []
    for path in opts.label_file:
        entries.extend(_read_kv_file(path, False))
    entries.extend(opts.label)
    labels: dict[str, str] = {}
    for entry in entries:
        key, _, value = entry.partition("=")
        if not key:
            raise InvalidOption(f"invalid label '{entry}': empty name")
        labels[key] = value
    return dict(sorted(labels.items()))  # a Go map: encoding/json sorts its keys


def _capabilities(names: list[str]) -> list[str] | None:
    out: list[str] = []
    for name in names:
        upper = name.strip().upper()
        if upper != "ALL" and not upper.startswith("CAP_"):
            upper = "CAP_" + upper
        if upper not in out:
            out.append(upper)
    return out or None


def _security_opts(values: list[str]) -> list[str] | None:
    out = []
    for value in values:
        key, eq, setting = value.partition("=" if "=" in value else ":")
        if key == "seccomp" and setting and setting != "unconfined" and setting != "builtin":
            from orlop import fastjson
            from orlop.cli import gojson

            try:
                with open(setting, "rb") as f:
                    profile = fastjson.loads(f.read())
            except OSError as e:
                raise InvalidOption(f"opening seccomp profile ({setting}) failed: "
                                    f"{os.strerror(e.errno) if e.errno else e}") from None
            except ValueError as e:
                raise InvalidOption(f"compacting json for seccomp profile ({setting}) failed: {e}") from None
            value = "seccomp=" + gojson.dumps(profile)
        out.append(value)
    return out or None


def _ulimits(values: list[str]) -> list[dict]:
    out = []
    for value in values:
        name, eq, limits = value.partition("=")
        if not eq or not name:
            raise InvalidOption(f"invalid argument \"{value}\" for \"--ulimit\" flag: invalid ulimit argument: "
                                f"{value}")
        soft, _, hard = limits.partition(":")
        try:
            soft_value = int(soft)
            hard_value = int(hard) if hard else soft_value
        except ValueError:
            raise InvalidOption(f"invalid argument \"{value}\" for \"--ulimit\" flag: invalid ulimit value "
                                f"{limits!r}") from None
        if soft_value > hard_value and hard_value != -1:
            raise InvalidOption(f"invalid argument \"{value}\" for \"--ulimit\" flag: ulimit soft limit must be "
                                f"less than or equal to hard limit: {soft_value} > {hard_value}")
        out.append({"Name": name, "Hard": hard_value, "Soft": soft_value})
    return out


def _restart_policy(text: str) -> dict:
    name, _, count = (text or "no").partition(":")
    if name not in _RESTART_POLICIES:
        raise InvalidOption(f"invalid restart policy: unknown policy '{name}'; use one of 'no', 'always', "
                            "'on-failure', or 'unless-stopped'")
    if count and name != "on-failure":
        raise InvalidOption("invalid restart policy: maximum retry count can only be used with 'on-failure'")
    try:
        retries = int(count) if count else 0
    except ValueError:
        raise InvalidOption(f"invalid restart policy: invalid maximum retry count: {count}") from None
    return {"Name": name, "MaximumRetryCount": retries}


def _size(value: str | None, what: str) -> int:
    if not value:
        return 0
    from orlop.cli.units import ram_in_bytes

    try:
        return ram_in_bytes(value)
    except ValueError as e:
        raise UsageError(f"invalid argument \"{value}\" for \"{what}\" flag: {e}") from None


def _nano_cpus(value: str | None) -> int:
    if not value:
        return 0
    try:
        whole, _, fraction = value.partition(".")
        if not (whole or fraction) or not (whole.isdigit() or not whole) or not (fraction.isdigit() or not fraction):
            raise ValueError
        nanos = int(whole or 0) * 1_000_000_000 + int((fraction + "000000000")[:9])
        if len(fraction.rstrip("0")) > 9:
            raise ValueError
    except ValueError:
        raise InvalidOption(f"invalid argument \"{value}\" for \"--cpus\" flag: failed to parse {value} as a "
                            "rational number") from None
    return nanos


def _tmpfs(values: list[str]) -> dict[str, str] | None:
    out: dict[str, str] = {}
    for value in values:
        path, _, options = value.partition(":")
        out[path] = options
    return dict(sorted(out.items())) or None


def _mounts(values: list[str]) -> list[dict]:
    if not values:
        return []
    from orlop.cli import mountopt  # only when --mount is given: `run` starts without it

    found = []
    for value in values or []:
        try:
            found.append(mountopt.parse(value))
        except UsageError as e:
            quoted = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'  # Go's %q
            raise UsageError(f'invalid argument {quoted} for "--mount" flag: {e}') from None
    return found


def _volumes(values: list[str]) -> tuple[list[str] | None, dict]:
    binds: list[str] = []
    anonymous: dict = {}
    for value in values:
        if ":" in value:
            parts = value.split(":")
            if len(parts) > 3 or not parts[0] or not parts[1]:
                raise InvalidOption(f"invalid spec: {value}: too many colons" if len(parts) > 3
                                    else f"invalid spec: {value}: empty section between colons")
            if not parts[1].startswith("/"):
                raise InvalidOption(f"invalid mount config for type \"bind\": invalid mount path: '{parts[1]}' "
                                    "mount path must be absolute")
            binds.append(value)
        else:
            if not value.startswith("/"):
                raise InvalidOption(f"invalid volume {value!r}: give HOST-PATH:CONTAINER-PATH[:ro] or an "
                                    "absolute CONTAINER-PATH")
            anonymous[value] = {}
    return binds or None, dict(sorted(anonymous.items()))


def _ports(publish: list[str], expose: list[str]) -> tuple[dict, dict]:
    """`-p [ip:][hostPort:]containerPort[/proto]` and `--expose port[/proto]`."""
    bindings: dict[str, list[dict]] = {}
    exposed: dict[str, dict] = {}
    for value in publish:
        spec, _, proto = value.partition("/")
        proto = proto or "tcp"
        parts = spec.rsplit(":", 2) if not spec.startswith("[") else [spec]
        if len(parts) == 1:
            host_ip, host_port, container_port = "", "", parts[0]
        elif len(parts) == 2:
            host_ip, (host_port, container_port) = "", parts
        else:
            host_ip, host_port, container_port = parts
        if not container_port or not all(p.isdigit() for p in container_port.split("-")):
            raise InvalidOption(f"invalid containerPort: {container_port}")
        key = f"{container_port}/{proto}"
        exposed[key] = {}
        bindings.setdefault(key, []).append({"HostIp": host_ip, "HostPort": host_port})
    for value in expose:
        port, _, proto = value.partition("/")
        exposed[f"{port}/{proto or 'tcp'}"] = {}
    return dict(sorted(bindings.items())), dict(sorted(exposed.items()))


_HEALTH_DURATIONS = (("Interval", "interval"), ("Timeout", "timeout"), ("StartPeriod", "start-period"),
                     ("StartInterval", "start-interval"))


def _healthcheck(opts) -> dict | None:
    """Config.Healthcheck from --health-* (Go's HealthConfig: zero fields left out), or
    {"Test": ["NONE"]} for --no-healthcheck; None when none is given."""
    from orlop.cli.units import parse_duration_ns

    durations = {}
    for key, name in _HEALTH_DURATIONS:
        text = getattr(opts, "health_" + name.replace("-", "_"))
        try:
            durations[key] = parse_duration_ns(text) if text else 0
        except ValueError as e:
            raise UsageError(f'invalid argument "{text}" for "--health-{name}" flag: {e}') from None
    given = bool(opts.health_cmd) or any(durations.values()) or opts.health_retries != 0
    if opts.no_healthcheck:
        if given:
            raise InvalidOption("--no-healthcheck conflicts with --health-* options")
        return {"Test": ["NONE"]}
    if not given:
        return None
    for key, name in _HEALTH_DURATIONS[:2] + (("Retries", "retries"),) + _HEALTH_DURATIONS[2:]:
        if (opts.health_retries if key == "Retries" else durations[key]) < 0:
            raise InvalidOption(f"--health-{name} cannot be negative")
    config: dict = {"Test": ["CMD-SHELL", opts.health_cmd]} if opts.health_cmd else {}
    config.update((key, value) for key, value in durations.items() if value)
    if opts.health_retries:
        config["Retries"] = opts.health_retries
    return config


def _devices(values: list[str]) -> list[dict]:
    out = []
    for value in values:
        parts = value.split(":")
        host = parts[0]
        container = parts[1] if len(parts) > 1 and parts[1] and not set(parts[1]) <= set("rwm") else host
        permissions = parts[-1] if len(parts) > 1 and set(parts[-1]) <= set("rwm") else "rwm"
        out.append({"PathOnHost": host, "PathInContainer": container, "CgroupPermissions": permissions})
    return out


def _extra_hosts(values: list[str]) -> list[str] | None:
    out = []
    for value in values:
        if "=" in value and ":" not in value.split("=", 1)[0]:
            host, _, ip = value.partition("=")
            value = f"{host}:{ip}"
        out.append(value)
    return out or None


def _sysctls(values: list[str]) -> dict[str, str] | None:
    out = {}
    for value in values:
        key, eq, setting = value.partition("=")
        if not eq:
            raise InvalidOption(f"invalid argument \"{value}\" for \"--sysctl\" flag: sysctl '{value}' is not "
                                "allowed")
        out[key] = setting
    return dict(sorted(out.items())) or None


def _log_config(opts) -> dict:
    config = {}
    for value in opts.log_opt:
        key, _, setting = value.partition("=")
        config[key] = setting
    return {"Type": opts.log_driver or "", "Config": dict(sorted(config.items()))}


def _endpoint(aliases: list[str] | None, ipv4: str = "", ipv6: str = "", mac: str = "",
              links: list[str] | None = None) -> dict:
    ipam = {k: v for k, v in (("IPv4Address", ipv4), ("IPv6Address", ipv6)) if v} or None
    return {"IPAMConfig": ipam, "Links": links, "Aliases": aliases, "MacAddress": mac, "DriverOpts": None,
            "GwPriority": 0, "NetworkID": "", "EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0,
            "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "DNSNames": None}


def attach_streams(opts) -> tuple[bool, bool, bool]:
    """(stdin, stdout, stderr) to attach: -a when given, else stdout+stderr (+stdin with -i)."""
    wanted = {a.lower() for a in opts.attach}
    bad = wanted - {"stdin", "stdout", "stderr"}
    if bad:
        raise InvalidOption(f"invalid argument \"{sorted(bad)[0]}\" for \"-a, --attach\" flag: valid streams are "
                            "STDIN, STDOUT and STDERR")
    if not wanted:
        return bool(opts.interactive), True, True
    return "stdin" in wanted or bool(opts.interactive), "stdout" in wanted, "stderr" in wanted


def build(opts, args: list[str], *, detach: bool, console_size: tuple[int, int] | None) -> dict:
    """The body of POST /containers/create for `run`/`create` OPTIONS IMAGE [COMMAND] [ARG...]."""
    image, command = args[0], args[1:]
    if getattr(opts, "rm", False) and opts.restart not in ("", "no"):
        raise InvalidOption("conflicting options: cannot specify both --restart and --rm")
    stdin, stdout, stderr = (False, False, False) if detach else attach_streams(opts)
    if detach and opts.attach:
        raise InvalidOption("conflicting options: cannot specify both --attach and --detach")
    entrypoint = [opts.entrypoint] if opts.entrypoint else ([""] if "entrypoint" in opts.changed else None)
    binds, anonymous_volumes = _volumes(opts.volume)
    bindings, exposed = _ports(opts.publish, opts.expose)
    network = opts.network or "default"
    memory_swap = -1 if opts.memory_swap == "-1" else _size(opts.memory_swap, "--memory-swap")
    if opts.pull not in ("always", "missing", "never"):
        raise InvalidOption(f"invalid pull option: '{opts.pull}': must be one of \"always\", \"missing\" or "
                            "\"never\"")

    config: dict = {
        "Hostname": opts.hostname or "", "Domainname": opts.domainname or "", "User": opts.user or "",
        "AttachStdin": stdin, "AttachStdout": stdout, "AttachStderr": stderr,
    }
    if exposed:
        config["ExposedPorts"] = exposed
    config.update({
        "Tty": bool(opts.tty), "OpenStdin": bool(opts.interactive),
        "StdinOnce": bool(opts.interactive and stdin),
        "Env": _env(opts), "Cmd": command or None,
    })
    health = _healthcheck(opts)
    if health is not None:
        config["Healthcheck"] = health
    config.update({
        "Image": image, "Volumes": anonymous_volumes,
        "WorkingDir": opts.workdir or "", "Entrypoint": entrypoint, "OnBuild": None, "Labels": _labels(opts),
    })
    if opts.stop_signal:
        config["StopSignal"] = opts.stop_signal
    if "stop_timeout" in opts.changed:
        config["StopTimeout"] = opts.stop_timeout

    host: dict = {
        "Binds": binds, "ContainerIDFile": opts.cidfile or "", "LogConfig": _log_config(opts),
        "NetworkMode": network, "PortBindings": bindings, "RestartPolicy": _restart_policy(opts.restart),
        "AutoRemove": bool(getattr(opts, "rm", False)), "VolumeDriver": "", "VolumesFrom": opts.volumes_from or None,
        "ConsoleSize": list(console_size) if console_size else [0, 0],
        "CapAdd": _capabilities(opts.cap_add), "CapDrop": _capabilities(opts.cap_drop),
        "CgroupnsMode": opts.cgroupns or "", "Dns": opts.dns, "DnsOptions": opts.dns_option,
        "DnsSearch": opts.dns_search, "ExtraHosts": _extra_hosts(opts.add_host), "GroupAdd": opts.group_add or None,
        "IpcMode": opts.ipc or "", "Cgroup": "", "Links": opts.link or None, "OomScoreAdj": opts.oom_score_adj,
        "PidMode": opts.pid or "", "Privileged": bool(opts.privileged), "PublishAllPorts": bool(opts.publish_all),
        "ReadonlyRootfs": bool(opts.read_only), "SecurityOpt": _security_opts(opts.security_opt),
    }
    tmpfs = _tmpfs(opts.tmpfs)
    if tmpfs:
        host["Tmpfs"] = tmpfs
    host.update({"UTSMode": opts.uts or "", "UsernsMode": opts.userns or "",
                 "ShmSize": _size(opts.shm_size, "--shm-size")})
    sysctls = _sysctls(opts.sysctl)
    if sysctls:
        host["Sysctls"] = sysctls
    if opts.runtime:
        host["Runtime"] = opts.runtime
    host.update({
        "Isolation": "", "CpuShares": opts.cpu_shares, "Memory": _size(opts.memory, "-m, --memory"),
        "NanoCpus": _nano_cpus(opts.cpus), "CgroupParent": opts.cgroup_parent or "", "BlkioWeight": opts.blkio_weight,
        "BlkioWeightDevice": [], "BlkioDeviceReadBps": [], "BlkioDeviceWriteBps": [], "BlkioDeviceReadIOps": [],
        "BlkioDeviceWriteIOps": [], "CpuPeriod": opts.cpu_period, "CpuQuota": opts.cpu_quota,
        "CpuRealtimePeriod": opts.cpu_rt_period, "CpuRealtimeRuntime": opts.cpu_rt_runtime, "CpusetCpus": opts.cpuset_cpus or "",
        "CpusetMems": opts.cpuset_mems or "", "Devices": _devices(opts.device),
        "DeviceCgroupRules": opts.device_cgroup_rule or None,
        "DeviceRequests": None,
    })
    if opts.kernel_memory:
        host["KernelMemory"] = _size(opts.kernel_memory, "--kernel-memory")
    host.update({
        "MemoryReservation": _size(opts.memory_reservation, "--memory-reservation"),
        "MemorySwap": memory_swap, "MemorySwappiness": opts.memory_swappiness,
        "OomKillDisable": bool(opts.oom_kill_disable), "PidsLimit": opts.pids_limit, "Ulimits": _ulimits(opts.ulimit),
        "CpuCount": 0, "CpuPercent": 0, "IOMaximumIOps": 0, "IOMaximumBandwidth": 0, "MaskedPaths": None,
        "ReadonlyPaths": None,
    })
    mounts = _mounts(opts.mount)
    if mounts:  # where the docker CLI puts them: after the resources, before MaskedPaths
        masked, read_only = host.pop("MaskedPaths"), host.pop("ReadonlyPaths")
        host.update(Mounts=mounts, MaskedPaths=masked, ReadonlyPaths=read_only)
    if opts.init:
        host["Init"] = True
    body = dict(config)
    body["HostConfig"] = host
    body["NetworkingConfig"] = {"EndpointsConfig": _endpoints(opts.network, opts.network_alias, opts.ip or "",
                                                              opts.ip6 or "", opts.mac_address or "",
                                                              opts.link)}
    return body


def _endpoints(network: str | None, aliases: list[str], ipv4: str = "", ipv6: str = "", mac: str = "",
               links: list[str] | None = None) -> dict:
    """As docker: the implicit "default" network gets its (empty) endpoint; a network given
    with --network only when it has endpoint options (aliases and links for user-defined
    ones, --ip, --ip6, --mac-address)."""
    if not network:
        return {"default": _endpoint(aliases or None, ipv4, ipv6, mac)}
    user_defined = network not in ("default", "bridge", "host", "none") and not network.startswith("container:")
    links = (links or None) if user_defined else None
    if not (aliases or ipv4 or ipv6 or mac or links):
        return {}
    if aliases and not user_defined:
        raise InvalidOption("network-scoped aliases are only supported for user-defined networks")
    return {network: _endpoint(aliases or None, ipv4, ipv6, mac, links)}
