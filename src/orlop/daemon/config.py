"""orlopd's configuration file (`--config-file`, default /etc/orlop/daemon.json), read as
dockerd reads /etc/docker/daemon.json: the same keys, an unknown key refused with dockerd's
message, a key also given as a flag refused as a conflict, and the container defaults
(log driver, DNS, ulimits, /dev/shm size, no-new-privileges, cgroup parent, IPC and
cgroup namespace modes) applied to every container created without its own."""

from __future__ import annotations

import json
import os

from orlop.containers.defaults import ConfigError, ContainerDefaults  # noqa: F401  (re-exported)

# Keys orlopd acts on.
SUPPORTED = {
    "host", "hosts", "data-root", "exec-root", "runtime", "default-runtime", "runtimes", "group", "debug",
    "log-level", "insecure-registries", "registry-mirrors", "seccomp-profile", "bip", "labels", "live-restore",
    "storage-driver", "max-concurrent-downloads", "pidfile", "experimental", "log-driver", "log-opts", "dns",
    "dns-search", "dns-opts", "default-ulimits", "default-shm-size", "no-new-privileges", "cgroup-parent",
    "default-ipc-mode", "default-cgroupns-mode", "shutdown-timeout", "features",
}
# dockerd's other keys: accepted, and reported as not acted on (log and `docker info` warnings).
NOT_ACTED_ON = {
    "allow-nondistributable-artifacts", "api-cors-header", "authorization-plugins", "bridge", "builder",
    "cdi-spec-dirs", "cluster-advertise", "cluster-store", "cluster-store-opts", "containerd",
    "containerd-namespace", "containerd-plugins-namespace", "cpu-rt-period", "cpu-rt-runtime",
    "default-address-pools", "default-gateway", "default-gateway-v6", "default-network-opts", "exec-opts",
    "exec-root-opts", "fixed-cidr", "fixed-cidr-v6", "hosts-gateway-ip", "host-gateway-ip", "icc",
    "init", "init-path", "ip", "ip-forward", "ip-forward-no-drop", "ip-masq", "ip6tables", "iptables", "ipv6",
    "log-format", "max-concurrent-uploads", "max-download-attempts", "metrics-addr", "min-api-version", "mtu",
    "node-generic-resources", "oom-score-adjust", "proxies", "raw-logs", "selinux-enabled", "storage-opts",
    "swarm-default-advertise-addr", "tls", "tlscacert", "tlscert", "tlskey", "tlsverify", "userland-proxy",
    "userland-proxy-path", "userns-remap",
}
_LOG_DRIVERS = ("json-file", "local", "none")




def load(path: str, flags: dict) -> tuple[dict, list[str]]:
    """(the file's settings, warnings about keys orlopd does not act on). `flags`: the
    options given on the command line, which the file may not also set."""
    try:
        with open(path) as f:
            settings = json.load(f)
    except FileNotFoundError:
        return {}, []
    except ValueError as e:
        raise ConfigError(f"unable to configure the Docker daemon with file {path}: {e}") from None
    if not isinstance(settings, dict):
        raise ConfigError(f"unable to configure the Docker daemon with file {path}: a JSON object is expected")
    unknown = sorted(set(settings) - SUPPORTED - NOT_ACTED_ON)
    if unknown:
        raise ConfigError(f"unable to configure the Docker daemon with file {path}: the following directives "
                          f"don't match any configuration option: {', '.join(unknown)}")
    conflicts = sorted(key for key in settings if key in flags)
    if conflicts:
        described = ", ".join(f"{key}: (from flag: {flags[key]}, from file: {settings[key]})" for key in conflicts)
        raise ConfigError(f"unable to configure the Docker daemon with file {path}: the following directives "
                          f"are specified both as a flag and in the configuration file: {described}")
    _check(settings, path)
    warnings = [f"daemon.json: {key} is accepted but not acted on by orlopd" for key in sorted(settings)
                if key in NOT_ACTED_ON]
    return _normalised(settings), warnings


def _check(settings: dict, path: str) -> None:
    def fail(message: str) -> None:
        raise ConfigError(f"unable to configure the Docker daemon with file {path}: {message}")

    driver = settings.get("storage-driver")
    if driver not in (None, "", "overlay2"):
        fail(f"storage-driver {driver!r}: orlopd stores images and containers with overlay2 only")
    if settings.get("log-driver") not in (None, *_LOG_DRIVERS):
        fail(f"log-driver {settings['log-driver']!r}: orlopd has {', '.join(_LOG_DRIVERS)}")
    for key in ("dns", "dns-search", "dns-opts", "registry-mirrors", "insecure-registries", "labels", "hosts"):
        value = settings.get(key)
        if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            fail(f"{key} must be a list of strings")
    for name, limit in (settings.get("default-ulimits") or {}).items():
        if not isinstance(limit, dict) or not isinstance(limit.get("Hard"), int) or \
                not isinstance(limit.get("Soft"), int):
            fail(f"default-ulimits: {name} must be {{\"Name\": …, \"Hard\": n, \"Soft\": n}}")
    for name, runtime in (settings.get("runtimes") or {}).items():
        if not isinstance(runtime, dict) or not runtime.get("path"):
            fail(f"runtimes: {name} needs a \"path\"")
        if runtime.get("runtimeArgs"):
            fail(f"runtimes: {name}: runtimeArgs are not supported by orlopd")


def _normalised(settings: dict) -> dict:
    """dockerd's aliases folded into orlopd's names."""
    out = dict(settings)
    if "default-runtime" in out:
        out["runtime"] = out.pop("default-runtime")
    hosts = out.pop("hosts", None)
    if hosts:
        if len(hosts) > 1:
            raise ConfigError(f"hosts: orlopd serves one unix:// socket, got {', '.join(hosts)}")
        out["host"] = hosts[0]
    if out.pop("debug", False):
        out["log-level"] = "debug"
    return out


def write_pidfile(path: str) -> None:
    if path:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w") as f:
            f.write(f"{os.getpid()}\n")
