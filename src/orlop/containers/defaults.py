"""What the daemon's configuration (daemon.json) gives every container that does not say
otherwise: log driver and options, DNS servers, search domains and options, ulimits, the
size of /dev/shm, no-new-privileges, cgroup parent, IPC and cgroup namespace modes."""

from __future__ import annotations

from orlop.errors import InvalidParameter


class ConfigError(ValueError):
    pass


def _bytes(text) -> int:
    if isinstance(text, int):
        return text
    units = {"b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    value = str(text).strip().lower().removesuffix("b") or "0"
    unit = value[-1] if value[-1] in units else "b"
    try:
        return int(float(value.rstrip("kmg")) * units[unit])
    except ValueError:
        raise ConfigError(f"default-shm-size: invalid size {text!r}") from None


class ContainerDefaults:
    """What daemon.json gives every container that does not say otherwise."""

    def __init__(self, settings: dict) -> None:
        self.log_driver = settings.get("log-driver") or ""
        self.log_opts = dict(settings.get("log-opts") or {})
        self.dns = list(settings.get("dns") or [])
        self.dns_search = list(settings.get("dns-search") or [])
        self.dns_opts = list(settings.get("dns-opts") or [])
        self.ulimits = [{"Name": name, "Hard": limit["Hard"], "Soft": limit["Soft"]}
                        for name, limit in sorted((settings.get("default-ulimits") or {}).items())]
        self.shm_size = _bytes(settings["default-shm-size"]) if settings.get("default-shm-size") else 0
        self.no_new_privileges = bool(settings.get("no-new-privileges"))
        self.cgroup_parent = settings.get("cgroup-parent") or ""
        self.ipc_mode = settings.get("default-ipc-mode") or ""
        self.cgroupns_mode = settings.get("default-cgroupns-mode") or ""
        if self.ipc_mode not in ("", "private", "shareable"):
            raise ConfigError(f"default-ipc-mode {self.ipc_mode!r}: use private or shareable")
        if self.cgroupns_mode not in ("", "private", "host"):
            raise ConfigError(f"default-cgroupns-mode {self.cgroupns_mode!r}: use private or host")

    def apply(self, host_config) -> dict | None:
        """The request's HostConfig with the defaults filled in where it has none."""
        if host_config is not None and not isinstance(host_config, dict):
            raise InvalidParameter("HostConfig must be a JSON object")
        hc = dict(host_config or {})
        log_config = dict(hc.get("LogConfig") or {})
        if not log_config.get("Type") and self.log_driver:
            log_config = {"Type": self.log_driver, "Config": {**self.log_opts, **(log_config.get("Config") or {})}}
        elif log_config.get("Type") in (None, "", self.log_driver or "json-file") and self.log_opts:
            log_config["Config"] = {**self.log_opts, **(log_config.get("Config") or {})}
        if log_config:
            hc["LogConfig"] = log_config
        for key, value in (("Dns", self.dns), ("DnsSearch", self.dns_search), ("DnsOptions", self.dns_opts)):
            if not hc.get(key) and value:
                hc[key] = list(value)
        if self.ulimits:
            given = {u.get("Name") for u in hc.get("Ulimits") or []}
            hc["Ulimits"] = [*(hc.get("Ulimits") or []), *(u for u in self.ulimits if u["Name"] not in given)]
        if not hc.get("ShmSize") and self.shm_size:
            hc["ShmSize"] = self.shm_size
        if self.no_new_privileges and not any(o.startswith("no-new-privileges") for o in hc.get("SecurityOpt") or []):
            hc["SecurityOpt"] = [*(hc.get("SecurityOpt") or []), "no-new-privileges"]
        for key, value in (("CgroupParent", self.cgroup_parent), ("IpcMode", self.ipc_mode),
                           ("CgroupnsMode", self.cgroupns_mode)):
            if not hc.get(key) and value:
                hc[key] = value
        return hc
