"""Named and anonymous volumes of the `local` driver: a directory per volume under the data
root (`volumes/<name>/_data`, as dockerd lays them out) with its metadata beside it, or,
with `type/device/o` options, a mount made when a container first uses it.

A new volume mounted over a directory of the image is first filled with that directory's
content (Docker's copy-up), once."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import time

from orlop.errors import Conflict, InvalidParameter, NotFound
from orlop.fsutil import write_atomic

VALID_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class VolumeService:
    def __init__(self, data_root: str) -> None:
        self.root = os.path.join(data_root, "volumes")
        os.makedirs(self.root, 0o701, exist_ok=True)

    def _meta_path(self, name: str) -> str:
        return os.path.join(self.root, name, "orlop-volume.json")

    def _load(self, name: str) -> dict | None:
        try:
            with open(self._meta_path(name)) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def list(self) -> list[dict]:
        out = []
        for name in sorted(os.listdir(self.root)):
            meta = self._load(name)
            if meta is not None:
                out.append(meta)
        return out

    def get(self, name: str) -> dict:
        meta = self._load(name) if name and "/" not in name else None
        if meta is None:
            raise NotFound(f"get {name}: no such volume")
        return meta

    def create(self, name: str | None = None, driver: str = "local", options: dict | None = None,
               labels: dict | None = None, anonymous: bool = False) -> dict:
        if driver not in ("local", ""):
            raise InvalidParameter(f"create {name}: error looking up volume plugin {driver}: plugin \"{driver}\" "
                                   "not found")
        name = name or secrets.token_hex(32)
        if not VALID_NAME.match(name):
            raise InvalidParameter(f"create {name}: \"{name}\" includes invalid characters for a local volume name, "
                                   "only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed")
        existing = self._load(name)
        if existing is not None:
            return existing  # Docker: creating an existing volume returns it
        options = dict(options or {})
        if options and not (options.get("type") and options.get("device")) and set(options) - {"o"}:
            raise InvalidParameter(f"create {name}: invalid option key: {sorted(set(options) - {'type', 'device', 'o'})}")
        directory = os.path.join(self.root, name)
        meta = {"CreatedAt": _now(), "Driver": "local", "Labels": dict(labels or {}),
                "Mountpoint": os.path.join(directory, "_data"), "Name": name, "Options": options or None,
                "Scope": "local", "Orlop": {"Anonymous": anonymous, "Populated": False}}
        if anonymous:
            meta["Labels"]["com.docker.volume.anonymous"] = ""
        try:
            os.makedirs(os.path.join(directory, "_data"), 0o755, exist_ok=True)
            write_atomic(self._meta_path(name), json.dumps(meta).encode())
        except OSError:  # (a full disk): no volume, not even its directory
            shutil.rmtree(directory, ignore_errors=True)
            raise
        return meta

    def remove(self, name: str, users: list[str], force: bool = False) -> None:
        meta = self._load(name)
        if meta is None:
            if force:
                return
            raise NotFound(f"get {name}: no such volume")
        if users:
            raise Conflict(f"remove {name}: volume is in use - [{', '.join(users)}]")
        self.unmount(meta)
        shutil.rmtree(os.path.join(self.root, name), ignore_errors=True)

    def mountpoint(self, meta: dict) -> str:
        """Where the volume's files are, mounting a `type/device` volume on first use."""
        options = meta.get("Options") or {}
        target = meta["Mountpoint"]
        if options.get("type") and not os.path.ismount(target):
            from orlop.linux import syscalls

            flags, data = 0, options.get("o", "")
            try:
                syscalls.mount(options["device"], target, options["type"], flags, data)
            except OSError as e:
                raise InvalidParameter(f"error while mounting volume '{target}': failed to mount local volume: "
                                       f"mount {options['device']}:{target}, data: {data}: {e.strerror}") from None
        return target

    @staticmethod
    def unmount(meta: dict) -> None:
        if os.path.ismount(meta["Mountpoint"]):
            from orlop.snapshots.overlay import Mount

            with contextlib.suppress(OSError):
                Mount.unmount(meta["Mountpoint"], detach=True)

    def populate(self, meta: dict, image_dir: str) -> None:
        """Docker's copy-up: an empty new volume gets the image's files at its path, once."""
        if meta["Orlop"].get("Populated"):
            return
        target = self.mountpoint(meta)
        if os.path.isdir(image_dir) and not os.listdir(target):
            shutil.copytree(image_dir, target, symlinks=True, dirs_exist_ok=True)
            st = os.stat(image_dir)
            os.chown(target, st.st_uid, st.st_gid)
            os.chmod(target, st.st_mode & 0o7777)
        meta["Orlop"]["Populated"] = True
        write_atomic(self._meta_path(meta["Name"]), json.dumps(meta).encode())
