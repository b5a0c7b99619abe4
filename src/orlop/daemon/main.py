"""orlopd: serve the Docker Engine API on a unix socket.

    orlopd [--host unix:///run/orlop/orlop.sock] [--data-root /var/lib/orlop] [--exec-root /run/orlop]
           [--runtime orlop-runtime|runc|crun|PATH] [--group GROUP] [--insecure-registry HOST]…
           [--log-level debug|info|warn|error] [--config-file /etc/orlop/daemon.json]

Start-up order: take the data root's lock (one daemon per data root), reclaim what a crash
left half-made (builds, unpacks, writes to the content store), restore the containers whose
shims kept running, then listen.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import grp
import logging
import os
import shutil
import signal
import sys
import time

from aiohttp import web

from orlop.api.app import make_app
from orlop.build.builder import Builder
from orlop.containers.events import Events
from orlop.containers.execs import ExecService
from orlop.containers.health import HealthMonitor
from orlop.containers.seccomp_profile import find_default_profile, load_profile
from orlop.containers.service import ContainerService, DaemonPaths
from orlop.daemon import config
from orlop.images.service import ImageService
from orlop.network.service import NetworkService
from orlop.volumes import VolumeService

log = logging.getLogger("orlopd")
DEFAULTS = {"host": "unix:///run/orlop/orlop.sock", "data-root": "/var/lib/orlop", "exec-root": "/run/orlop",
            "runtime": "orlop-runtime", "log-level": "info", "group": "", "insecure-registries": [],
            "seccomp-profile": "", "bip": ""}


def parse_args(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(prog="orlopd", description="orlop's daemon: the Docker Engine API")
    parser.add_argument("-H", "--host")
    parser.add_argument("--data-root")
    parser.add_argument("--exec-root")
    parser.add_argument("--runtime", dest="runtime", help="default OCI runtime: orlop-runtime, runc, crun or a path")
    parser.add_argument("--group", help="group allowed to use the socket (root only by default)")
    parser.add_argument("--insecure-registry", action="append", dest="insecure_registries")
    parser.add_argument("--seccomp-profile")
    parser.add_argument("--bip", help="address/prefix of the default bridge orlop0 (e.g. 172.17.0.1/16)")
    parser.add_argument("-l", "--log-level", choices=["debug", "info", "warn", "error"])
    parser.add_argument("--config-file", default="/etc/orlop/daemon.json")
    args = parser.parse_args(argv)
    flags = {}
    for key in ("host", "data_root", "exec_root", "runtime", "group", "seccomp_profile", "log_level", "bip",
                "insecure_registries"):
        value = getattr(args, key)
        if value:
            flags[key.replace("_", "-") if key != "insecure_registries" else "insecure-registries"] = value
    try:
        from_file, warnings = config.load(args.config_file, flags)
    except config.ConfigError as e:
        raise SystemExit(f"orlopd: {e}") from None
    settings = {**DEFAULTS, **from_file, **flags}
    settings["config-warnings"] = warnings
    return settings


def find_runtimes() -> dict[str, str]:
    here = os.path.dirname(sys.executable)
    runtimes = {}
    for name in ("orlop-runtime", "runc", "crun"):
        path = os.path.join(here, name) if name == "orlop-runtime" else shutil.which(name)
        if path and os.path.exists(path):
            runtimes[name] = path
    return runtimes


class Services:
    def __init__(self, settings: dict) -> None:
        paths = DaemonPaths(settings["data-root"], settings["exec-root"])
        runtimes = find_runtimes()
        for name, runtime in (settings.get("runtimes") or {}).items():  # daemon.json's "runtimes"
            runtimes[name] = runtime["path"]
        default = settings["runtime"]
        if default not in runtimes:
            if os.path.isabs(default) and os.access(default, os.X_OK):
                runtimes[os.path.basename(default)] = default
                default = os.path.basename(default)
            else:
                raise SystemExit(f"orlopd: runtime {default!r} not found (have: {', '.join(runtimes)})")
        profile_path = settings["seccomp-profile"] or find_default_profile()
        profile = load_profile(profile_path) if profile_path else None
        if profile is None:
            log.warning("no default seccomp profile found (run scripts/setup): containers run without one")
        self.events = Events()
        self.images = ImageService(settings["data-root"], frozenset(settings["insecure-registries"]))
        self.images.mirrors = tuple(settings.get("registry-mirrors") or ())
        self.images.max_concurrent_downloads = int(settings.get("max-concurrent-downloads") or 3)
        self.containers = ContainerService(paths, self.images, self.events, runtimes, default, profile)
        try:
            self.containers.defaults = config.ContainerDefaults(settings)
        except config.ConfigError as e:
            raise SystemExit(f"orlopd: {e}") from None
        self.containers.daemon_settings = settings
        self.execs = ExecService(self.containers)
        self.containers.health = HealthMonitor(self.containers, self.execs)
        self.builder = Builder(self.images, runtimes[default], paths.runtime_root(runtimes[default]),
                               os.path.join(settings["data-root"], "tmp", "build"), profile)
        self.networks = NetworkService(settings["data-root"], settings["exec-root"], settings["bip"] or None)
        self.networks.containers = self.containers
        self.containers.networks = self.networks
        self.volumes = VolumeService(settings["data-root"])
        self.containers.volumes = self.volumes
        self.started = time.time()


async def serve(settings: dict) -> None:
    services = Services(settings)
    for reclaimed in (await asyncio.to_thread(services.builder.reclaim), await asyncio.to_thread(services.images.reclaim)):
        if reclaimed:  # what a crash (kill -9, power cut) left half-made: never taken up again
            log.info("reclaimed what a crash left: %s", ", ".join(reclaimed))
    await services.networks.prepare()
    await services.containers.restore()
    await services.networks.start()
    app = make_app(services)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    host = settings["host"]
    if not host.startswith("unix://"):
        raise SystemExit(f"orlopd: only unix:// sockets are served (got {host})")
    path = host[len("unix://"):]
    os.makedirs(os.path.dirname(path), 0o755, exist_ok=True)
    if os.path.exists(path):
        os.unlink(path)
    site = web.UnixSite(runner, path)
    await site.start()
    mode, gid = 0o600, -1
    if settings["group"]:
        try:
            gid = grp.getgrnam(settings["group"]).gr_gid
        except KeyError:
            raise SystemExit(f"orlopd: group {settings['group']!r} does not exist") from None
        mode = 0o660
    os.chown(path, 0, gid)
    os.chmod(path, mode)
    config.write_pidfile(settings.get("pidfile") or "")
    for warning in settings.get("config-warnings") or []:
        log.warning("%s", warning)
    log.info("API listening on %s", path)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    # Containers keep running (live restore): only the API goes away.
    await runner.cleanup()
    await services.networks.shutdown()


def main(argv: list[str] | None = None) -> None:
    settings = parse_args(sys.argv[1:] if argv is None else argv)
    level = {"warn": "WARNING"}.get(settings["log-level"], settings["log-level"].upper())
    logging.getLogger("pyroute2").setLevel(logging.WARNING)
    logging.basicConfig(level=level, format="time=\"%(asctime)s\" level=%(levelname)s msg=\"%(message)s\"")
    os.makedirs(settings["data-root"], 0o711, exist_ok=True)
    lock = open(os.path.join(settings["data-root"], "orlopd.lock"), "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise SystemExit(f"orlopd: another orlopd is using {settings['data-root']}") from None
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
