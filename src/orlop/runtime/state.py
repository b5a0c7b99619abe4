"""A container's state directory under --root: state.json and exec.fifo.

state.json is written atomically (temp file, fsync, rename) and records what
later commands need: the init's pid *and* start time (a reused pid is not our
container), cgroup and namespace paths, the bundle; config.json is a copy of
the bundle's.
"""

from __future__ import annotations

import os
import time

from orlop import fastjson
from orlop.fsutil import write_atomic  # noqa: F401 - re-exported for create/run
from orlop.linux import proc
from orlop.runtime.errors import ContainerNotFound, RuntimeFailure

DEFAULT_ROOT = "/run/orlop-runtime"


def default_root() -> str:
    """/run/orlop-runtime for root; $XDG_RUNTIME_DIR/orlop-runtime for other users (as runc)."""
    if os.geteuid() == 0:
        return DEFAULT_ROOT
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/orlop-runtime-{os.geteuid()}"
    return os.path.join(runtime_dir, "orlop-runtime")
STATE_FILE = "state.json"
CONFIG_FILE = "config.json"
EXEC_FIFO = "exec.fifo"

NAMESPACE_KEYS = {  # OCI namespace type -> (runc's state.json key, /proc/<pid>/ns/ name)
    "pid": ("NEWPID", "pid"), "network": ("NEWNET", "net"), "mount": ("NEWNS", "mnt"),
    "ipc": ("NEWIPC", "ipc"), "uts": ("NEWUTS", "uts"), "user": ("NEWUSER", "user"),
    "cgroup": ("NEWCGROUP", "cgroup"), "time": ("NEWTIME", "time"),
}


def validate_id(container_id: str) -> None:
    # runc's rule: letters, digits, and _ + - . ; never a path.
    if not container_id or container_id in (".", "..") or not all(
            c.isascii() and (c.isalnum() or c in "_+-.") for c in container_id):
        raise RuntimeFailure(f"invalid container id format: {container_id!r}")


def rfc3339_now() -> str:
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1_000_000_000)) + f".{ns % 1_000_000_000:09d}Z"


class ContainerState:
    """What state.json holds; attribute names follow runc's keys.

    The bundle's config is kept beside it as config.json, byte for byte as it
    was read at create: nothing to re-serialise on the start-up path, and
    commands that only need the status never parse it.
    """

    __slots__ = ("id", "dir", "init_process_pid", "init_process_start", "created", "bundle", "rootfs",
                 "cgroup_paths", "namespace_paths", "owner", "systemd_cgroup", "_config", "_config_raw")
    _PERSISTED = ("id", "init_process_pid", "init_process_start", "created", "bundle", "rootfs",
                  "cgroup_paths", "namespace_paths", "owner", "systemd_cgroup")

    def __init__(self, container_id: str, state_dir: str, bundle: str, rootfs: str, config: dict,
                 config_raw: bytes) -> None:
        self.id = container_id
        self.dir = state_dir
        self.bundle = bundle
        self.rootfs = rootfs
        self._config: dict | None = config
        self._config_raw: bytes | None = config_raw
        self.init_process_pid = 0
        self.init_process_start = 0
        self.created = rfc3339_now()
        self.cgroup_paths: dict[str, str] = {}
        self.namespace_paths: dict[str, str] = {}
        self.owner = ""
        self.systemd_cgroup = False

    @property
    def config(self) -> dict:
        if self._config is None:
            try:
                self._config = fastjson.load_file(os.path.join(self.dir, CONFIG_FILE))
            except (OSError, ValueError) as e:
                raise RuntimeFailure(f"container {self.id}: cannot read its {CONFIG_FILE}: {e}") from None
        return self._config

    @property
    def annotations(self) -> dict:
        return self.config.get("annotations") or {}

    @property
    def fifo_path(self) -> str:
        return os.path.join(self.dir, EXEC_FIFO)

    def save(self) -> None:
        if self._config_raw is not None:
            write_atomic(os.path.join(self.dir, CONFIG_FILE), self._config_raw)
            self._config_raw = None
        record = {name: getattr(self, name) for name in self._PERSISTED}
        write_atomic(os.path.join(self.dir, STATE_FILE), fastjson.dumps(record).encode())

    def save_config(self, config: dict) -> None:
        """Replace the kept config.json (`update` changes linux.resources)."""
        write_atomic(os.path.join(self.dir, CONFIG_FILE), fastjson.dumps(config).encode())
        self._config, self._config_raw = config, None

    @classmethod
    def load(cls, root: str, container_id: str) -> ContainerState:
        validate_id(container_id)
        state_dir = os.path.join(root, container_id)
        try:
            record = fastjson.load_file(os.path.join(state_dir, STATE_FILE))
        except FileNotFoundError:
            raise ContainerNotFound(container_id) from None
        except ValueError as e:
            raise RuntimeFailure(f"container {container_id}: corrupt {STATE_FILE}: {e}") from None
        self = cls.__new__(cls)
        self.dir = state_dir
        self._config = self._config_raw = None
        for name in cls._PERSISTED:
            setattr(self, name, record.get(name))
        return self

    def init_alive(self) -> bool:
        return bool(self.init_process_pid) and proc.is_alive(self.init_process_pid, self.init_process_start)

    def oci_state(self, status: str) -> dict:
        """The JSON `state` prints (runtime-spec state + runc's extra fields)."""
        return {
            "ociVersion": self.config.get("ociVersion", "1.0.2"),
            "id": self.id,
            "pid": self.init_process_pid if status != "stopped" else 0,
            "status": status,
            "bundle": self.bundle,
            "rootfs": self.rootfs,
            "created": self.created,
            "owner": self.owner,
            "annotations": self.annotations,
        }


def list_ids(root: str) -> list[str]:
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if os.path.exists(os.path.join(root, n, STATE_FILE)))
