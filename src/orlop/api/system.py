"""/_ping, /version, /info, /events, and the 404s the docker CLI's `inspect` probes expect."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import time

from aiohttp import web

from orlop.api.common import error_response, json_response
from orlop.api.streams import STANDARD_HEADERS
from orlop.containers import host_support
from orlop.containers import logs as container_logs
from orlop.containers.events import Events, matches
from orlop.containers.service import ContainerService
from orlop.errors import InvalidParameter

API_VERSION = "1.45"
MIN_API_VERSION = "1.24"
VERSION = "0.1.0"


class SystemRoutes:
    def __init__(self, containers: ContainerService, events: Events, started: float) -> None:
        self.containers = containers
        self.events = events
        self.started = started

    def register(self, add) -> None:
        add("GET", "/_ping", self.ping)
        add("HEAD", "/_ping", self.ping)
        add("GET", "/version", self.version)
        add("GET", "/info", self.info)
        add("GET", "/events", self.stream_events)
        for kind in ("plugins",):
            add("GET", f"/{kind}/{{name}}", self.not_found(kind))
            add("GET", f"/{kind}/{{name}}/json", self.not_found(kind))

    @staticmethod
    def not_found(kind: str):
        async def handler(request: web.Request) -> web.Response:
            return error_response(404, f"{kind[:-1]} {request.match_info['name']} not found")
        return handler

    async def ping(self, request: web.Request) -> web.Response:
        headers = {"Cache-Control": "no-cache, no-store, must-revalidate", "Pragma": "no-cache",
                   "Builder-Version": "1", "Swarm": "inactive"}
        if request.method == "HEAD":
            return web.Response(status=200, headers={**headers, "Content-Length": "0", "Content-Type": "text/plain"})
        return web.Response(status=200, body=b"OK", headers=headers, content_type="text/plain")

    async def version(self, request: web.Request) -> web.Response:
        uname = os.uname()
        arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(uname.machine, uname.machine)
        return json_response({
            "Platform": {"Name": "orlop"},
            "Components": [{"Name": "Engine", "Version": VERSION,
                            "Details": {"ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION,
                                        "Os": "linux", "Arch": arch, "KernelVersion": uname.release}}],
            "Version": VERSION, "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION, "GitCommit": "",
            "GoVersion": f"python{platform.python_version()}", "Os": "linux", "Arch": arch,
            "KernelVersion": uname.release, "BuildTime": ""})

    async def info(self, request: web.Request) -> web.Response:
        records = self.containers.store.records.values()
        running = sum(1 for r in records if r["State"]["Running"] and not r["State"]["Paused"])
        paused = sum(1 for r in records if r["State"]["Paused"])
        uname = os.uname()
        runtimes = {name: {"path": path} for name, path in self.containers.runtimes.items()}
        cgroup_version = "2" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "1"
        host = host_support.detect()
        with open("/proc/meminfo") as f:
            mem_total = int(f.readline().split()[1]) * 1024
        settings = self.containers.daemon_settings
        mirrors = [m if m.endswith("/") else m + "/" for m in settings.get("registry-mirrors") or []]
        return json_response({
            "ID": "", "Containers": len(records), "ContainersRunning": running, "ContainersPaused": paused,
            "ContainersStopped": len(records) - running - paused,
            "Images": len({r.config for r in self.containers.images.images.list()}),
            "Driver": "overlay2", "DriverStatus": [["Backing Filesystem", "extfs"]],
            "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "none"], "Log": ["json-file", "local", "none"]},
            "MemoryLimit": host.memory, "SwapLimit": host.swap, "CpuCfsPeriod": host.cpu_cfs,
            "CpuCfsQuota": host.cpu_cfs, "CPUShares": host.cpu_shares, "CPUSet": host.cpuset, "PidsLimit": host.pids,
            "IPv4Forwarding": True, "Debug": settings.get("log-level") == "debug", "NFd": len(os.listdir("/proc/self/fd")),
            "OomKillDisable": host.oom_kill_disable, "NGoroutines": len(asyncio.all_tasks()),
            "SystemTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "LoggingDriver": self.containers.defaults.log_driver or "json-file",
            "CgroupDriver": "cgroupfs", "CgroupVersion": cgroup_version, "NEventsListener": len(self.events.subscribers),
            "KernelVersion": uname.release, "OperatingSystem": _os_name(), "OSVersion": "", "OSType": "linux",
            "Architecture": uname.machine, "NCPU": os.cpu_count(), "MemTotal": mem_total,
            "IndexServerAddress": "https://index.docker.io/v1/", "RegistryConfig": {"InsecureRegistryCIDRs": ["127.0.0.0/8"],
                                                                                    "IndexConfigs": {},
                                                                                    "Mirrors": mirrors},
            "DockerRootDir": self.containers.paths.data_root, "HttpProxy": "", "HttpsProxy": "", "NoProxy": "",
            "Name": uname.nodename, "Labels": settings.get("labels") or [],
            "ExperimentalBuild": bool(settings.get("experimental")), "ServerVersion": VERSION,
            "Runtimes": runtimes, "DefaultRuntime": self.containers.default_runtime,
            "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": False,
                      "Error": "", "RemoteManagers": None},
            "LiveRestoreEnabled": True, "Isolation": "", "InitBinary": "", "SecurityOptions": ["name=seccomp,profile=builtin"],
            "Warnings": [*_cgroup_warnings(host), *(settings.get("config-warnings") or [])] or None})

    async def stream_events(self, request: web.Request) -> web.StreamResponse:
        try:
            filters = {k: list(v) for k, v in json.loads(request.query.get("filters") or "{}").items()}
        except (ValueError, AttributeError):
            raise InvalidParameter("invalid filters") from None
        # unix seconds, RFC 3339 or a duration before now, as `docker events --since 10m` sends them
        since = container_logs.parse_time(request.query["since"]) if request.query.get("since") else None
        until = container_logs.parse_time(request.query.get("until") or "")
        queue = self.events.subscribe()
        response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        await response.prepare(request)
        try:
            if since is not None:
                for event in list(self.events.history):
                    if event["timeNano"] / 1e9 >= since and (not until or event["timeNano"] / 1e9 <= until) \
                            and matches(event, filters):
                        await response.write(json.dumps(event).encode() + b"\n")
            while True:
                timeout = None
                if until:
                    timeout = until - time.time()
                    if timeout <= 0:
                        break
                try:
                    event = await asyncio.wait_for(queue.get(), timeout)
                except TimeoutError:
                    break
                if matches(event, filters):
                    await response.write(json.dumps(event).encode() + b"\n")
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.events.unsubscribe(queue)
        return response


def _cgroup_warnings(host) -> list[str]:
    """What `docker info` warns about when the host's cgroups lack a limit (dockerd's wording)."""
    missing = [(host.memory, "memory limit"), (host.swap, "swap limit"),
               (host.oom_kill_disable or host.version == 2, "oom kill disable"), (host.cpu_cfs, "cpu cfs quota"),
               (host.cpu_cfs, "cpu cfs period"), (host.cpu_shares, "cpu shares"), (host.cpuset, "cpuset"),
               (host.blkio_weight or host.version == 1, "io.weight")]  # v1 has no weight since Linux 5.0: not warned
    return [f"WARNING: No {what} support" for supported, what in missing if not supported]


def _os_name() -> str:
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"


__all__ = ["API_VERSION", "STANDARD_HEADERS", "SystemRoutes"]
