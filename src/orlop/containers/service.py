"""The container service: create, start, stop, kill, remove, wait, pause, rename, restart
policies and live restore, over the stores and one orlop-shim per running container.

Where things live: the record in data-root/containers/<id>/ (with the json-file log,
hosts, hostname, resolv.conf and the mounted rootfs), the bundle and the shim's
socket in exec-root/c/<id>/, the runtime's state under exec-root/runtime/<name>/.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import time

from orlop.containers import healthcheck, host_support, links, resource_checks, shim_client, spec, validate
from orlop.containers import update as updates
from orlop.containers.defaults import ContainerDefaults
from orlop.containers.events import Events
from orlop.containers.names import random_name
from orlop.containers.oom_monitor import OomMonitor
from orlop.containers.store import ZERO_TIME, ContainerStore, empty_state
from orlop.errors import Conflict, InvalidParameter, NotFound, NotModified, OrlopError, describe_os_error
from orlop.fsutil import tree_size, write_atomic
from orlop.images import manage
from orlop.images.service import ImageService
from orlop.network import service as network_service
from orlop.shim import protocol
from orlop.shim.logs import rfc3339_nano
from orlop.snapshots import ACTIVE, mount_all
from orlop.snapshots.overlay import Mount

log = logging.getLogger("orlopd")
VALID_NAME = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
CONFIG_KEYS_FROM_IMAGE = ("Env", "Cmd", "Entrypoint", "WorkingDir", "User", "Labels", "ExposedPorts", "Volumes",
                          "StopSignal", "Healthcheck", "OnBuild")


def now() -> str:
    return rfc3339_nano(time.time_ns())


class DaemonPaths:
    def __init__(self, data_root: str, exec_root: str) -> None:
        self.data_root = data_root
        self.exec_root = exec_root
        self.containers = os.path.join(data_root, "containers")
        self.states = os.path.join(exec_root, "c")
        os.makedirs(self.states, 0o700, exist_ok=True)

    def state_dir(self, cid: str) -> str:
        return os.path.join(self.states, cid)

    def runtime_root(self, runtime: str) -> str:
        return os.path.join(self.exec_root, "runtime", os.path.basename(runtime))


class ContainerService:
    def __init__(self, paths: DaemonPaths, images: ImageService, events: Events, runtimes: dict[str, str],
                 default_runtime: str, seccomp_profile: dict | None) -> None:
        self.paths = paths
        self.images = images
        self.events = events
        self.runtimes = runtimes
        self.default_runtime = default_runtime
        self.seccomp_profile = seccomp_profile
        self.networks = None  # the NetworkService, set by the daemon (None: only loopback networking)
        self.volumes = None  # the VolumeService, set by the daemon
        self.health = None  # the HealthMonitor (orlop.containers.health), set by the daemon
        self.defaults = ContainerDefaults({})  # daemon.json's defaults for new containers, set by the daemon
        self.daemon_settings: dict = {}  # the daemon's settings, for `docker info`
        self.store = ContainerStore(paths.containers)
        self.exits: dict[str, asyncio.Event] = {}     # set when a run of the container ends
        self.removed: dict[str, asyncio.Event] = {}
        self.pending_attach: dict[str, list[asyncio.Future]] = {}
        self.monitors: dict[str, asyncio.Task] = {}
        self.locks: dict[str, asyncio.Lock] = {}
        self.oom_monitor = OomMonitor(self._oom_while_running)

    # -- lookups ---------------------------------------------------------------------------------
    def get(self, ref: str) -> dict:
        return self.store.get(ref)

    def lock(self, cid: str) -> asyncio.Lock:
        return self.locks.setdefault(cid, asyncio.Lock())

    def _event(self, record: dict, action: str, **extra: str) -> None:
        attrs = {"image": record["Config"].get("Image", ""), "name": record["Name"].lstrip("/"),
                 **(record["Config"].get("Labels") or {}), **extra}
        self.events.emit("container", action, record["Id"], attrs)

    event = _event  # for the services beside this one (files, commit)

    def _record_state(self, record: dict) -> bool:
        """Save a change of state that has happened already (an exit, a stop, a pause): on a
        full disk it is known here (inspect, wait, events say so) though not on disk until
        the next save, as dockerd logs a checkpoint it cannot write. False if not saved."""
        try:
            self.store.save(record)
        except OSError as e:
            log.error("container %s: %s: the change of its state is not saved", record["Id"][:12],
                      describe_os_error(e))
            return False
        return True

    def runtime_path(self, name: str) -> str:
        try:
            return self.runtimes[name]
        except KeyError:
            raise InvalidParameter(f"Unknown runtime specified {name}") from None

    # -- create ----------------------------------------------------------------------------------
    async def create(self, body: dict, name: str | None, warnings: list[str] | None = None) -> dict:
        """A new container from a create request; Docker's warnings (limits this host cannot
        apply, discarded) are appended to `warnings`."""
        if not isinstance(body, dict):
            raise InvalidParameter("the request body must be a JSON object (the container config)")
        image_name = body.get("Image")
        if not image_name:
            raise InvalidParameter("config has no image: give one (e.g. busybox)")
        if not isinstance(image_name, str):
            raise InvalidParameter(f"json: cannot unmarshal {type(image_name).__name__} into Go struct field "
                                   "Config.Image of type string")
        if name:
            name = name.lstrip("/")
            if len(name) < 2 or not set(name) <= VALID_NAME or not name[0].isalnum():
                raise InvalidParameter(f'Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed')
            self.store.check_name_free(name)
        record_image = self.images.resolve(image_name)
        image_config = self.images.config(record_image).get("config") or {}
        validate.config(body)
        healthcheck.validate_config(body.get("Healthcheck"))
        host_config = _host_config_with_defaults(self.defaults.apply(body.get("HostConfig")), self.default_runtime)
        validate.host_config(host_config)
        found = resource_checks.check(host_config, host_support.detect())
        resource_checks.adapt_for_create(host_config)
        spec.capabilities(host_config)  # an unknown one is refused now
        self.runtime_path(host_config["Runtime"])
        policy = host_config["RestartPolicy"]
        if policy.get("Name") not in (None, "", "no", "always", "on-failure", "unless-stopped"):
            raise InvalidParameter(f"invalid restart policy '{policy.get('Name')}'")
        if host_config.get("AutoRemove") and policy.get("Name") not in (None, "", "no"):
            raise InvalidParameter("can't create 'AutoRemove' container with restart policy")
        config = self._merge_config(body, image_config)
        cid = secrets.token_hex(32)
        name = name or random_name(self.store.names())
        host_config["Links"] = links.normalise(host_config.get("Links") or [], name, self.store.get) or None
        chain = await self.images.unpacked(record_image)
        record = {
            "Id": cid, "Created": now(), "Path": "", "Args": [], "State": empty_state(),
            "Image": record_image.config, "ResolvConfPath": "", "HostnamePath": "", "HostsPath": "",
            "LogPath": os.path.join(self.store.dir(cid), f"{cid}-json.log")
            if host_config["LogConfig"]["Type"] in ("json-file", "local") else "", "Name": "/" + name,
            "RestartCount": 0, "Driver": "overlay2", "Platform": "linux", "MountLabel": "", "ProcessLabel": "",
            "AppArmorProfile": "", "ExecIDs": None, "HostConfig": host_config, "Config": config,
            "GraphDriver": {"Name": "overlay2", "Data": {}}, "Mounts": [],
            "NetworkSettings": {"Bridge": "", "SandboxID": "", "Ports": {}, "Networks": {}, "IPAddress": "",
                                "Gateway": "", "MacAddress": ""},
            "Orlop": {"Snapshot": cid, "ManualStop": False},
        }
        if self.networks is not None:
            networks = self.networks.requested(host_config, body.get("NetworkingConfig"))
            record["NetworkSettings"]["Networks"] = networks
            if body.get("MacAddress") and networks:  # API < 1.44 put it in Config
                next(iter(networks.values()))["MacAddress"] = network_service.checked_mac(body["MacAddress"])
            record["Orlop"]["MacAddresses"] = {name: ep["MacAddress"] for name, ep in networks.items()
                                               if ep["MacAddress"]}
        if self.volumes is not None:
            record["Mounts"] = self._volume_mounts(host_config, config)
        entry = [*(config.get("Entrypoint") or []), *(config.get("Cmd") or [])]
        record["Path"], record["Args"] = (entry[0], entry[1:]) if entry else ("", [])
        try:
            mounts = self.images.snapshotter.prepare(cid, chain)
            record["GraphDriver"]["Data"] = _graph_data(mounts)
            self.store.save(record)
        except BaseException:
            self.store.delete(cid)
            with contextlib.suppress(Exception):
                self.images.snapshotter.remove(cid)
            for mount in record["Mounts"]:  # the anonymous volumes made for it
                if mount.get("Type") == "volume" and len(mount["Name"]) == 64 and self.volumes is not None:
                    with contextlib.suppress(OrlopError, OSError):
                        if self.volumes.get(mount["Name"])["Orlop"].get("Anonymous") and \
                                not self.volume_users(mount["Name"]):
                            self.volumes.remove(mount["Name"], [])
            raise
        self._event(record, "create")
        if warnings is not None:
            warnings.extend(found)
        return record

    @staticmethod
    def _merge_config(body: dict, image: dict) -> dict:
        """The request's Config over the image's, as Docker merges them at create."""
        config = {k: v for k, v in body.items() if k not in ("HostConfig", "NetworkingConfig")}
        env = spec.merge_env(image.get("Env") or [], config.get("Env") or [], {})
        config["Env"] = env or None
        if config.get("Entrypoint"):
            if not config.get("Cmd"):
                config["Cmd"] = None
        else:
            config["Entrypoint"] = image.get("Entrypoint")
            if not config.get("Cmd"):
                config["Cmd"] = image.get("Cmd")
        for key in ("WorkingDir", "User", "StopSignal"):
            config[key] = config.get(key) or image.get(key) or ""
        config["Labels"] = {**(image.get("Labels") or {}), **(config.get("Labels") or {})}
        for key in ("ExposedPorts", "Volumes", "OnBuild"):
            if not config.get(key) and image.get(key):
                config[key] = image[key]
        healthcheck_config = healthcheck.merge_config(config.get("Healthcheck"), image.get("Healthcheck"))
        if healthcheck_config is not None:
            config["Healthcheck"] = healthcheck_config
        config.setdefault("Hostname", "")
        for key in ("Domainname", "WorkingDir"):
            config.setdefault(key, "")
        for key in ("AttachStdin", "AttachStdout", "AttachStderr", "Tty", "OpenStdin", "StdinOnce"):
            config[key] = bool(config.get(key))
        return config

    def _volume_mounts(self, hc: dict, config: dict) -> list[dict]:
        """record["Mounts"]: binds, named volumes (made if missing) and an anonymous volume
        for each of the image's VOLUMEs nothing else covers, as dockerd lists them."""
        mounts: list[dict] = []
        for bind in hc.get("Binds") or []:
            source, destination, options = validate.parse_bind(bind)
            rw = "ro" not in options
            mode = ",".join(options)
            if source.startswith("/"):
                mounts.append({"Type": "bind", "Source": source, "Destination": destination, "Mode": mode,
                               "RW": rw, "Propagation": "rprivate"})
            else:
                meta = self.volumes.create(source)
                mounts.append({"Type": "volume", "Name": source, "Source": meta["Mountpoint"],
                               "Destination": destination, "Driver": "local", "Mode": mode or "z", "RW": rw,
                               "Propagation": ""})
        for mount in hc.get("Mounts") or []:
            if mount.get("Type") == "volume":
                options = mount.get("VolumeOptions") or {}
                meta = self.volumes.create(mount.get("Source") or None,
                                           options=(options.get("DriverConfig") or {}).get("Options"),
                                           labels=options.get("Labels"), anonymous=not mount.get("Source"))
                mounts.append({"Type": "volume", "Name": meta["Name"], "Source": meta["Mountpoint"],
                               "Destination": mount["Target"], "Driver": "local", "Mode": "z",
                               "RW": not mount.get("ReadOnly"), "Propagation": ""})
            elif mount.get("Type") in ("bind", "tmpfs"):
                mounts.append({"Type": mount["Type"], "Source": mount.get("Source", ""),
                               "Destination": mount["Target"], "Mode": "", "RW": not mount.get("ReadOnly"),
                               "Propagation": "rprivate" if mount["Type"] == "bind" else ""})
        covered = {m["Destination"] for m in mounts} | set(hc.get("Tmpfs") or {})
        for inherited in self._volumes_from(hc.get("VolumesFrom") or []):
            if inherited["Destination"] not in covered:
                mounts.append(inherited)
                covered.add(inherited["Destination"])
        for destination in sorted(config.get("Volumes") or {}):
            if destination not in covered:
                meta = self.volumes.create(anonymous=True)
                mounts.append({"Type": "volume", "Name": meta["Name"], "Source": meta["Mountpoint"],
                               "Destination": destination, "Driver": "local", "Mode": "", "RW": True,
                               "Propagation": ""})
        return mounts

    def _volumes_from(self, sources: list[str]) -> list[dict]:
        """--volumes-from c[:ro|rw]: the volumes and binds of another container at the same
        places, read-only or read-write as asked, else as they are there."""
        inherited: list[dict] = []
        for entry in sources:
            ref, _, mode = entry.partition(":")
            if mode not in ("", "ro", "rw"):
                raise InvalidParameter(f"invalid mode for volumes-from: {mode}")
            source = self.store.get(ref)
            for mount in source.get("Mounts") or []:
                if mount.get("Type") not in ("volume", "bind"):
                    continue
                copied = dict(mount)
                if mode:
                    copied["RW"] = mode == "rw"
                    copied["Mode"] = mode
                inherited.append(copied)
        return inherited

    def volume_users(self, name: str) -> list[str]:
        return [r["Id"][:12] for r in self.store.records.values()
                if any(m.get("Name") == name for m in r.get("Mounts") or [])]

    def _populate_volumes(self, record: dict, rootfs: str) -> None:
        from orlop.runtime.rootfs import resolve_in_root

        for mount in record.get("Mounts") or []:
            if mount.get("Type") == "volume" and self.volumes is not None:
                with contextlib.suppress(OrlopError):
                    meta = self.volumes.get(mount["Name"])
                    self.volumes.populate(meta, resolve_in_root(rootfs, mount["Destination"]))
                    mount["Source"] = self.volumes.mountpoint(meta)

    def sizes(self, record: dict) -> tuple[int, int]:
        """(SizeRw, SizeRootFs): the writable layer's files, and those plus the image's."""
        upper = record["GraphDriver"]["Data"].get("UpperDir")
        rw = tree_size(upper) if upper else 0
        try:
            image = manage.image_size(self.images.resolve(record["Image"]), self.images.content)
        except OrlopError:
            image = 0
        return rw, rw + image

    # -- start -----------------------------------------------------------------------------------
    async def start(self, ref: str) -> None:
        record = self.get(ref)
        async with self.lock(record["Id"]):
            if record["State"]["Running"]:
                raise NotModified("container already started")
            record["Orlop"]["ManualStop"] = False
            try:
                await self._start(record)
            except OrlopError as e:
                await self._start_failed(record, e)
                raise

    async def _start_failed(self, record: dict, error: OrlopError) -> None:
        """Docker's exit codes for a start that never ran the command (127: not found, 126:
        not executable, 128 otherwise); `--rm` removes the container, attached clients end."""
        cid = record["Id"]
        message = str(error)
        code = 127 if ("not found" in message or "no such file" in message.lower()) else \
            126 if "permission denied" in message.lower() else 128
        record["State"].update(Status="exited" if record["State"]["StartedAt"] != ZERO_TIME else "created",
                               Running=False, Restarting=False, Pid=0, Error=message, ExitCode=code)
        self._record_state(record)
        for future, _ in self.pending_attach.pop(cid, []):
            if not future.done():
                future.set_exception(OrlopError(message))
        if record["HostConfig"].get("AutoRemove"):
            await self.remove(cid, force=True)

    async def _start(self, record: dict) -> None:
        cid = record["Id"]
        cdir = self.store.dir(cid)
        state_dir = self.paths.state_dir(cid)
        runtime = self.runtime_path(record["HostConfig"]["Runtime"])
        runtime_root = self.paths.runtime_root(runtime)
        shutil.rmtree(state_dir, ignore_errors=True)
        os.makedirs(state_dir, 0o700)
        rootfs = os.path.join(cdir, "rootfs")
        self._mount_rootfs(record, rootfs)
        try:
            if self.networks is not None:
                self.networks.plan(record)
            self._populate_volumes(record, rootfs)
            linked = links.resolve(record, self.store.get) if _on_default_bridge(record) else []
            files = self._write_etc_files(record, links.hosts_lines(linked))
            config = spec.generate(record, self._shared_namespaces(record), rootfs, files, self.seccomp_profile,
                                   links.environment(record, linked))
            write_atomic(os.path.join(state_dir, "config.json"), json.dumps(config).encode())
            cfg = record["Config"]
            log_opts = (record["HostConfig"].get("LogConfig") or {}).get("Config") or {}
            answer = await shim_client.spawn({
                "id": cid, "bundle": state_dir, "state_dir": state_dir, "runtime": runtime,
                "runtime_root": runtime_root, "log_path": record["LogPath"],
                **_log_rotation(record["HostConfig"]["LogConfig"]["Type"], log_opts),
                "tty": cfg.get("Tty"), "stdin": cfg.get("OpenStdin"), "stdin_once": cfg.get("StdinOnce"),
            })
            self.exits.setdefault(cid, asyncio.Event())  # `wait` may already be waiting on it
            if self.networks is not None:
                await self.networks.connect(record, answer["pid"])
            await self._connect_pending_attaches(cid, state_dir)
            await self._runtime(runtime, runtime_root, "start", cid)
        except BaseException:
            await self._runtime_quiet(runtime, runtime_root, "delete", "--force", cid)
            self._unmount_rootfs(rootfs)
            if self.networks is not None:
                await self.networks.release(record)
            raise
        state = record["State"]
        state.update(Status="running", Running=True, Paused=False, Restarting=False, OOMKilled=False, Dead=False,
                     Pid=answer["pid"], ExitCode=0, Error="", StartedAt=now())
        if self.networks is not None:
            await self.networks.apply_rules()  # its published ports, now that it counts as running
        if self.health is not None:
            self.health.init(record)
        self._record_state(record)
        self._event(record, "start")
        self.monitors[cid] = asyncio.create_task(self._monitor(cid))
        self.oom_monitor.watch(cid, answer["pid"])

    async def _connect_pending_attaches(self, cid: str, state_dir: str) -> None:
        """Clients that attached before start get their shim stream now, before the process
        runs, so that none of its output is missed (as `docker run` relies on)."""
        for future, attach_request in self.pending_attach.pop(cid, []):
            if future.done():
                continue
            try:
                _, conn = await shim_client.request(state_dir, attach_request)
            except OrlopError as e:
                future.set_exception(e)
            else:
                future.set_result(conn)

    def _shared_namespaces(self, record: dict) -> dict[str, str]:
        """Namespaces joined rather than made: `--network container:<name>` (and the same
        for --ipc/--pid) use the other container's, which must be running."""
        paths = {}
        for kind, key in spec.NAMESPACE_MODES:
            mode = record["HostConfig"].get(key) or ""
            if mode.startswith("container:"):
                other = self.get(mode.split(":", 1)[1])
                if not other["State"]["Running"]:
                    raise Conflict(f"cannot join network of a non running container: {other['Id']}"
                                   if kind == "network" else f"container {other['Id']} is not running")
                paths[kind] = f"/proc/{other['State']['Pid']}/ns/{'net' if kind == 'network' else kind}"
        return paths

    def _mount_rootfs(self, record: dict, rootfs: str) -> None:
        os.makedirs(rootfs, exist_ok=True)
        if os.path.ismount(rootfs):
            return
        mount_all(self.images.snapshotter.mounts(record["Orlop"]["Snapshot"]), rootfs)

    @staticmethod
    def _unmount_rootfs(rootfs: str) -> None:
        if os.path.ismount(rootfs):
            with contextlib.suppress(OSError):
                Mount.unmount(rootfs, detach=True)

    def _write_etc_files(self, record: dict, linked_hosts: str = "") -> dict[str, str]:
        cdir = self.store.dir(record["Id"])
        cfg, hc = record["Config"], record["HostConfig"]
        hostname = cfg.get("Hostname") or record["Id"][:12]
        host_network = hc.get("NetworkMode") == "host"
        paths = {"/etc/hostname": os.path.join(cdir, "hostname"), "/etc/hosts": os.path.join(cdir, "hosts"),
                 "/etc/resolv.conf": os.path.join(cdir, "resolv.conf")}
        if host_network:
            hostname_text = open("/etc/hostname").read() if os.path.exists("/etc/hostname") else os.uname().nodename
            hosts = open("/etc/hosts").read() if os.path.exists("/etc/hosts") else ""
        else:
            hostname_text = hostname + "\n"
            hosts = ("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n"
                     "ff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n")
        for entry in hc.get("ExtraHosts") or []:
            host, _, address = entry.partition(":")
            if address == "host-gateway":  # the host, as the default bridge's containers reach it
                address = self._host_gateway()
            hosts += f"{address}\t{host}\n"
        hosts += linked_hosts
        network_dns = None
        if self.networks is not None and not host_network:
            for address in self.networks.own_addresses(record):
                hosts += f"{address}\t{hostname}\n"
            network_dns = self.networks.resolv_conf_nameservers(record)
        write_atomic(paths["/etc/hostname"], hostname_text.encode(), mode=0o644)
        write_atomic(paths["/etc/hosts"], hosts.encode(), mode=0o644)
        write_atomic(paths["/etc/resolv.conf"], _resolv_conf(hc, host_network, network_dns).encode(), mode=0o644)
        record["HostnamePath"], record["HostsPath"] = paths["/etc/hostname"], paths["/etc/hosts"]
        record["ResolvConfPath"] = paths["/etc/resolv.conf"]
        return paths

    def _host_gateway(self) -> str:
        """--add-host NAME:host-gateway: the default bridge's gateway, as dockerd's default."""
        if self.networks is not None:
            with contextlib.suppress(OrlopError, KeyError, IndexError):
                return self.networks.get("bridge")["IPAM"]["Config"][0]["Gateway"]
        raise InvalidParameter("unable to derive the IP value for host-gateway")

    async def _runtime(self, runtime: str, root: str, *args: str) -> str:
        proc = await asyncio.create_subprocess_exec(runtime, "--root", root, *args, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
        if proc.returncode != 0:
            message = err.decode(errors="replace").strip().splitlines()
            raise OrlopError(_runtime_message(message[-1] if message else f"{runtime} {args[0]} failed"))
        return out.decode()

    async def _runtime_quiet(self, runtime: str, root: str, *args: str) -> None:
        with contextlib.suppress(OrlopError, OSError):
            await self._runtime(runtime, root, *args)

    async def runtime_for(self, record: dict, *args: str) -> str:
        runtime = self.runtime_path(record["HostConfig"]["Runtime"])
        return await self._runtime(runtime, self.paths.runtime_root(runtime), *args)

    # -- exits, restart policies ----------------------------------------------------------------
    async def _monitor(self, cid: str) -> None:
        state_dir = self.paths.state_dir(cid)
        result = None
        try:
            result = await shim_client.call(state_dir, {"op": "wait"})
        except (shim_client.ShimGone, OSError, ValueError):
            result = shim_client.read_exit(state_dir)
        except asyncio.CancelledError:
            return
        if result is None:
            await asyncio.sleep(0.1)
            result = shim_client.read_exit(state_dir) or {"exit_code": 255, "oom_killed": False,
                                                         "finished_at": now()}
        self.monitors.pop(cid, None)
        await self._handle_exit(cid, result)

    async def _handle_exit(self, cid: str, result: dict) -> None:
        reported = self.oom_monitor.unwatch(cid)  # OOM kills already reported as `oom` events
        record = self.store.records.get(cid)
        if record is None:
            return
        if self.networks is not None:
            await self.networks.release(record)
        if self.store.records.get(cid) is not record:
            return  # removed meanwhile
        # From here to the save, nothing awaits: a client that sees the container stopped
        # (wait, inspect) and removes it at once must not have the record saved back after.
        state = record["State"]
        state.update(Status="exited", Running=False, Paused=False, Restarting=False, Pid=0,
                     ExitCode=result.get("exit_code", 255), OOMKilled=bool(result.get("oom_killed")),
                     FinishedAt=result.get("finished_at") or now())
        if self.health is not None:
            self.health.stop(record)
        self._unmount_rootfs(os.path.join(self.store.dir(cid), "rootfs"))
        restart = self._should_restart(record)
        if restart:
            state["Restarting"] = True
            state["Status"] = "restarting"
        if self._record_state(record):  # else the shim's exit.json stays, for a daemon restarted meanwhile
            shutil.rmtree(self.paths.state_dir(cid), ignore_errors=True)
        # One `oom` per OOM kill of the run: those not already reported while it ran.
        kills = result.get("oom_kills", 1 if state["OOMKilled"] else 0)
        for _ in range(kills - reported):
            self._event(record, "oom")
        self._event(record, "die", exitCode=str(state["ExitCode"]))
        event = self.exits.pop(cid, None)
        if event:
            event.set()
        if restart:
            asyncio.create_task(self._restart_later(cid))
        elif record["HostConfig"].get("AutoRemove"):
            await self.remove(cid, force=True)

    def _oom_while_running(self, cid: str) -> bool:
        """The OOM killer struck in a running container (its init, or any of its processes):
        OOMKilled from now on, and an `oom` event now, as dockerd does on containerd's."""
        record = self.store.records.get(cid)
        if record is None or not record["State"]["Running"]:
            return False
        record["State"]["OOMKilled"] = True
        self._record_state(record)
        self._event(record, "oom")
        return True

    def _should_restart(self, record: dict) -> bool:
        policy = record["HostConfig"].get("RestartPolicy") or {}
        name = policy.get("Name") or "no"
        if record["Orlop"].get("ManualStop") or name == "no":
            return False
        if name == "on-failure":
            limit = policy.get("MaximumRetryCount") or 0
            return record["State"]["ExitCode"] != 0 and (limit == 0 or record["RestartCount"] < limit)
        return True

    async def _restart_later(self, cid: str) -> None:
        record = self.store.records.get(cid)
        if record is None:
            return
        delay = min(0.1 * 2 ** min(record["RestartCount"], 10), 60)  # Docker's back-off
        await asyncio.sleep(delay)
        record = self.store.records.get(cid)
        if record is None or record["Orlop"].get("ManualStop") or record["State"]["Running"]:
            return
        async with self.lock(cid):
            if record["Orlop"].get("ManualStop") or record["State"]["Running"] or cid not in self.store.records:
                return  # stopped or removed while we slept
            record["RestartCount"] += 1
            try:
                await self._start(record)
            except OrlopError as e:
                record["State"].update(Status="exited", Restarting=False, Error=str(e))
                self._record_state(record)

    # -- waiting ---------------------------------------------------------------------------------
    async def wait(self, ref: str, condition: str = "not-running") -> dict:
        record = self.get(ref)
        cid = record["Id"]
        if condition not in ("not-running", "next-exit", "removed"):
            raise InvalidParameter(f"invalid condition: {condition!r}")
        if condition == "not-running" and not record["State"]["Running"] and not record["State"]["Restarting"]:
            return {"StatusCode": record["State"]["ExitCode"], "Error": None}
        if condition == "removed":
            await self.removed.setdefault(cid, asyncio.Event()).wait()
            return {"StatusCode": record["State"]["ExitCode"], "Error": None}
        event = self.exits.setdefault(cid, asyncio.Event())
        await event.wait()
        return {"StatusCode": record["State"]["ExitCode"], "Error": None}

    # -- signals, stop, pause --------------------------------------------------------------------
    async def kill(self, ref: str, sig: str | None = None) -> None:
        try:
            record = self.get(ref)
        except NotFound as e:
            raise NotFound(f"Cannot kill container: {ref}: {e}") from None
        number = validate.signal_number(sig, signal.SIGKILL)
        if not record["State"]["Running"]:
            raise Conflict(f"Container {record['Id']} is not running")
        if number == signal.SIGKILL:
            record["Orlop"]["ManualStop"] = record["Orlop"].get("ManualStop") or False
        await self.runtime_for(record, "kill", record["Id"], str(number))
        self._event(record, "kill", signal=str(number))

    async def stop(self, ref: str, timeout: int | None = None, sig: str | None = None) -> None:
        record = self.get(ref)
        cid = record["Id"]
        async with self.lock(cid):  # not while a restart policy is starting it again
            if not record["State"]["Running"]:
                if record["State"]["Restarting"]:
                    record["Orlop"]["ManualStop"] = True
                    record["State"].update(Restarting=False, Status="exited")
                    self._record_state(record)
                    return
                raise NotModified("container already stopped")
            record["Orlop"]["ManualStop"] = True
            self._record_state(record)
        if timeout is None:
            timeout = record["Config"].get("StopTimeout")
            timeout = 10 if timeout is None else timeout
        number = validate.signal_number(sig or record["Config"].get("StopSignal"), signal.SIGTERM)
        exited = self.exits.setdefault(cid, asyncio.Event())
        if record["State"]["Paused"]:
            await self.unpause(cid)
        with contextlib.suppress(OrlopError):
            await self.runtime_for(record, "kill", cid, str(number))
        if timeout < 0:
            await exited.wait()
        else:
            try:
                await asyncio.wait_for(exited.wait(), timeout)
            except TimeoutError:
                with contextlib.suppress(OrlopError):
                    await self.runtime_for(record, "kill", cid, "9")
                await exited.wait()
        self._event(record, "stop")

    async def restart(self, ref: str, timeout: int | None = None) -> None:
        record = self.get(ref)
        if record["State"]["Running"]:
            await self.stop(record["Id"], timeout)
        await self.start(record["Id"])
        self._event(record, "restart")

    async def pause(self, ref: str) -> None:
        record = self.get(ref)
        if not record["State"]["Running"]:
            raise Conflict(f"Container {record['Id']} is not running")
        if record["State"]["Paused"]:
            raise Conflict(f"Container {record['Id']} is already paused")
        await self.runtime_for(record, "pause", record["Id"])
        record["State"].update(Paused=True, Status="paused")
        if self.health is not None:
            self.health.update(record)
        self._record_state(record)
        self._event(record, "pause")

    async def unpause(self, ref: str) -> None:
        record = self.get(ref)
        if not record["State"]["Paused"]:
            raise Conflict(f"Container {record['Id']} is not paused")
        await self.runtime_for(record, "resume", record["Id"])
        record["State"].update(Paused=False, Status="running")
        if self.health is not None:
            self.health.update(record)
        self._record_state(record)
        self._event(record, "unpause")

    async def update(self, ref: str, body, api_version: str | None = None) -> list[str]:
        """Change a container's resource limits and restart policy (POST /containers/{id}/update):
        checked as at create, merged into HostConfig and saved; a running (or paused) container's
        cgroup is changed by its runtime's `update`, and if the runtime refuses, the HostConfig is
        put back. Returns Docker's warnings."""
        resources, policy = updates.read_request(body, api_version)
        warnings = resource_checks.check(resources, host_support.detect(), update=True)
        record = self.get(ref)
        cid = record["Id"]
        async with self.lock(cid):
            if cid not in self.store.records:
                raise Conflict(f"Cannot update container {cid}: container is marked for removal and cannot be "
                               '"update"')
            before = record["HostConfig"]
            record["HostConfig"] = updates.merge(before, resources, policy, cid)
            try:
                self.store.save(record)
            except OSError:  # (a full disk): nothing changed
                record["HostConfig"] = before
                raise
            state = record["State"]
            delta = updates.runtime_delta(resources)
            try:
                if state["Running"] and not state["Restarting"] and delta:
                    await self._runtime_update(record, delta)
            except OrlopError as e:
                record["HostConfig"] = before
                self._record_state(record)
                raise OrlopError(f"Cannot update container {cid}: {e}") from None
            finally:
                self._event(record, "update")
        return warnings

    async def _runtime_update(self, record: dict, delta: dict) -> None:
        """`<runtime> update --resources <file> <id>`: orlop-runtime, runc and crun alike."""
        path = os.path.join(self.paths.state_dir(record["Id"]), "update-resources.json")
        write_atomic(path, json.dumps(delta).encode())
        try:
            await self.runtime_for(record, "update", "--resources", path, record["Id"])
        finally:
            with contextlib.suppress(OSError):
                os.unlink(path)

    async def rename(self, ref: str, new_name: str) -> None:
        record = self.get(ref)
        new_name = (new_name or "").lstrip("/")
        if not new_name:
            raise InvalidParameter("Neither old nor new names may be empty")
        if len(new_name) < 2 or not set(new_name) <= VALID_NAME or not new_name[0].isalnum():
            raise InvalidParameter(f"Invalid container name ({new_name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
        if record["Name"] == "/" + new_name:
            raise Conflict("Renaming a container with the same name as its current name")
        try:
            self.store.check_name_free(new_name)
        except Conflict as e:
            raise Conflict(f"Error when allocating new name: {e}") from None
        old = record["Name"]
        record["Name"] = "/" + new_name
        try:
            self.store.save(record)
        except OSError:  # (a full disk): not renamed
            record["Name"] = old
            raise
        self._event(record, "rename", oldName=old)

    # -- remove ----------------------------------------------------------------------------------
    async def remove(self, ref: str, force: bool = False, volumes: bool = False) -> None:
        record = self.get(ref)
        cid = record["Id"]
        if record["State"]["Running"] or record["State"]["Restarting"]:
            if not force:
                what = "paused" if record["State"]["Paused"] else "running"
                raise Conflict(f"You cannot remove a {what} container {cid}. Stop the container before "
                               f"attempting removal or force remove")
            record["Orlop"]["ManualStop"] = True
            if record["State"]["Running"]:
                exited = self.exits.setdefault(cid, asyncio.Event())
                if record["State"]["Paused"]:
                    with contextlib.suppress(OrlopError):
                        await self.runtime_for(record, "resume", cid)
                with contextlib.suppress(OrlopError):
                    await self.runtime_for(record, "kill", cid, "9")
                try:
                    await asyncio.wait_for(exited.wait(), 10)
                except TimeoutError:
                    pass
        if self.store.records.get(cid) is None:
            return  # removed meanwhile (AutoRemove)
        if self.health is not None:
            self.health.forget(cid)
        self._unmount_rootfs(os.path.join(self.store.dir(cid), "rootfs"))
        shutil.rmtree(self.paths.state_dir(cid), ignore_errors=True)
        # The record goes first: a crash from here leaves a snapshot without one, which the next
        # start reclaims (never a record without its snapshot); on a full disk, what its
        # directory frees (log, /etc files) makes room for the snapshots' metadata.
        self.store.delete(cid)
        try:
            self.images.snapshotter.remove(record["Orlop"]["Snapshot"])
        except Exception as e:  # reclaimed at the next start
            log.error("container %s: its snapshot was not removed: %s", cid[:12], e)
        self.oom_monitor.unwatch(cid)
        if volumes and self.volumes is not None:  # rm -v: its anonymous volumes go too
            for mount in record.get("Mounts") or []:
                if mount.get("Type") == "volume":
                    with contextlib.suppress(OrlopError):
                        meta = self.volumes.get(mount["Name"])
                        if meta["Orlop"].get("Anonymous") and not self.volume_users(mount["Name"]):
                            self.volumes.remove(mount["Name"], [])
        self._event(record, "destroy")
        self.removed.setdefault(cid, asyncio.Event()).set()
        self.locks.pop(cid, None)

    # -- live restore ----------------------------------------------------------------------------
    async def restore(self) -> None:
        """After a daemon (re)start: follow the shims still running, record the exits that
        happened while the daemon was away, and start containers whose policy says so."""
        await asyncio.get_running_loop().run_in_executor(None, self._reclaim_orphans)
        for cid, record in list(self.store.records.items()):
            state = record["State"]
            state_dir = self.paths.state_dir(cid)
            if state["Running"]:
                try:
                    answer = await shim_client.call(state_dir, {"op": "state"})
                except (shim_client.ShimGone, OSError, ValueError):
                    answer = None
                if answer and answer.get("status") in ("running", "paused"):
                    self.exits.setdefault(cid, asyncio.Event())
                    self.monitors[cid] = asyncio.create_task(self._monitor(cid))
                    self.oom_monitor.watch(cid, state["Pid"])
                    if self.health is not None and not state["Paused"]:
                        self.health.init(record)  # as dockerd: "starting" again, the Log kept
                    continue
                result = shim_client.read_exit(state_dir) or {"exit_code": 255, "oom_killed": False,
                                                             "finished_at": now()}
                await self._handle_exit(cid, result)
            elif state["Restarting"]:
                asyncio.create_task(self._restart_later(cid))
            elif (record["HostConfig"].get("RestartPolicy") or {}).get("Name") == "always" and \
                    state["StartedAt"] != ZERO_TIME:
                record["Orlop"]["ManualStop"] = False  # "always" even restarts a stopped one with the daemon
                asyncio.create_task(self._restart_later(cid))

    def _reclaim_orphans(self) -> None:
        """What a crash in the middle of create or remove leaves: a writable snapshot or a
        runtime state directory that no container record owns."""
        known = set(self.store.records)
        for info in list(self.images.snapshotter.walk()):
            if info.kind == ACTIVE and len(info.name) == 64 and info.name not in known:
                with contextlib.suppress(Exception):
                    self.images.snapshotter.remove(info.name)
        if os.path.isdir(self.paths.states):
            for cid in os.listdir(self.paths.states):
                if cid not in known and not os.path.exists(os.path.join(self.paths.states, cid, protocol.SOCKET)):
                    shutil.rmtree(os.path.join(self.paths.states, cid), ignore_errors=True)

    def used_images(self) -> dict[str, list[str]]:
        users: dict[str, list[str]] = {}
        for cid, record in self.store.records.items():
            users.setdefault(record["Image"], []).append(cid)
        return users


LOG_DRIVERS = ("json-file", "local", "none")
# Docker's `local` driver rotates by default (20 MB × 5 files); orlop keeps it in the json-file
# format, which only `docker logs` reads.
LOCAL_LOG_DEFAULTS = {"max-size": "20m", "max-file": "5"}


def _host_config_with_defaults(given, default_runtime: str) -> dict:
    """HostConfig as dockerd stores it: every field clients read back is present."""
    if given is not None and not isinstance(given, dict):
        raise InvalidParameter("HostConfig must be a JSON object")
    hc = dict(given or {})
    hc["Runtime"] = hc.get("Runtime") or default_runtime
    if hc.get("NetworkMode") in (None, "", "default"):
        hc["NetworkMode"] = "bridge"
    log_config = dict(hc.get("LogConfig") or {})
    log_config["Type"] = log_config.get("Type") or "json-file"
    log_config["Config"] = log_config.get("Config") or {}
    if log_config["Type"] not in LOG_DRIVERS:
        raise InvalidParameter(f"failed to create logger: logger: no log driver named '{log_config['Type']}' "
                               f"is registered (orlop has: {', '.join(LOG_DRIVERS)})")
    hc["LogConfig"] = log_config
    if not isinstance(hc.get("RestartPolicy") or {}, dict):
        raise InvalidParameter("json: cannot unmarshal into Go struct field HostConfig.RestartPolicy: an object "
                               "{\"Name\": …, \"MaximumRetryCount\": …} is expected")
    policy = dict(hc.get("RestartPolicy") or {})
    policy["Name"] = policy.get("Name") or "no"
    policy["MaximumRetryCount"] = policy.get("MaximumRetryCount") or 0
    hc["RestartPolicy"] = policy
    hc["ShmSize"] = hc.get("ShmSize") or 64 << 20
    hc["IpcMode"] = hc.get("IpcMode") or "private"
    hc["CgroupnsMode"] = hc.get("CgroupnsMode") or ("private" if os.path.exists("/sys/fs/cgroup/cgroup.controllers")
                                                    else "host")
    for key in ("Binds", "CapAdd", "CapDrop", "Dns", "DnsOptions", "DnsSearch", "ExtraHosts", "Links",
                "VolumesFrom", "SecurityOpt", "Tmpfs", "Ulimits", "Mounts"):
        hc.setdefault(key, None)
    for key in ("Privileged", "ReadonlyRootfs", "AutoRemove", "PublishAllPorts", "OomKillDisable"):
        hc[key] = bool(hc.get(key))
    for key in ("Memory", "MemorySwap", "MemoryReservation", "NanoCpus", "CpuShares", "CpuPeriod", "CpuQuota",
                "BlkioWeight", "OomScoreAdj"):
        hc.setdefault(key, 0)
    hc.setdefault("PortBindings", {})
    return hc


def _graph_data(mounts: list[Mount]) -> dict:
    data = {}
    for mount in mounts:
        for option in mount.options:
            key, _, value = option.partition("=")
            if key in ("lowerdir", "upperdir", "workdir"):
                data[{"lowerdir": "LowerDir", "upperdir": "UpperDir", "workdir": "WorkDir"}[key]] = value
    return data


def _size(value) -> int:
    if not value:
        return 0
    text = str(value).strip().lower()
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    if text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def _resolv_conf(host_config: dict, host_network: bool, network_dns: list[str] | None = None) -> str:
    try:
        with open("/etc/resolv.conf") as f:
            lines = f.read().splitlines()
    except OSError:
        lines = []
    if host_network and not host_config.get("Dns"):
        return "\n".join(lines) + "\n"
    # A loopback resolver of the host is unreachable from the container's own network.
    servers = host_config.get("Dns") or network_dns or [line.split()[1] for line in lines
                                          if line.startswith("nameserver ") and len(line.split()) > 1
                                          and not line.split()[1].startswith(("127.", "::1"))]
    servers = servers or ["8.8.8.8", "8.8.4.4"]
    other = [line for line in lines if line.startswith(("search ", "options "))]
    if host_config.get("DnsSearch"):
        other = [line for line in other if not line.startswith("search ")] + [
            "search " + " ".join(host_config["DnsSearch"])]
    if host_config.get("DnsOptions"):
        other.append("options " + " ".join(host_config["DnsOptions"]))
    return "".join(f"nameserver {s}\n" for s in servers) + "".join(line + "\n" for line in other)


def _runtime_message(message: str) -> str:
    """runc's JSON log line or plain text → the error text, keeping the phrases the docker CLI
    maps to exit codes 126/127 ("executable file not found", "permission denied")."""
    with contextlib.suppress(ValueError):
        entry = json.loads(message)
        if isinstance(entry, dict) and "msg" in entry:
            message = entry["msg"]
    return message


def _on_default_bridge(record: dict) -> bool:
    return (record["HostConfig"].get("NetworkMode") or "bridge") in ("bridge", "default")


def _log_rotation(driver: str, options: dict) -> dict:
    """The shim's rotation of the container's log: the options given, or the local driver's."""
    if driver == "local":
        options = {**LOCAL_LOG_DEFAULTS, **options}
    return {"log_max_size": _size(options.get("max-size")), "log_max_file": options.get("max-file")}
