"""`docker commit`: a container's writable layer as a new image on top of its image, as
dockerd's daemon/commit.go and images/image_commit.go make it.

The config is the request's (or the container's) with the `changes` Dockerfile
instructions applied, then completed from the container's config (moby's `merge`). The
layer is the container's overlay upper directory without orlop's mount points (the /etc
files, /proc, /sys, /dev: dockerd's "-init" layer), written by a thread chrooted into that
directory — a running container may change it meanwhile, but cannot make the daemon read
outside it — and stored gzip-compressed; an empty one adds no layer, only an
`empty_layer` history entry. The container is paused meanwhile unless told otherwise.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import shutil
import time

from orlop import tarwrite
from orlop.containers.changes import INIT_PATHS
from orlop.containers.fsview import ContainerFSView
from orlop.errors import Conflict, InvalidParameter, NotFound, OrlopError
from orlop.images.changes import ChangeError, apply_changes
from orlop.images.layers import store_tar
from orlop.images.reference import InvalidReference, parse
from orlop.images.store import ImageRecord, dangling_name

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
LAYER_EXCLUDES = frozenset(path.lstrip("/") for path in INIT_PATHS)


def image_name(repo: str, tag: str) -> str | None:
    """moby's RepoTagReference: no repo, no name; a digest cannot be committed to."""
    if not repo:
        return None
    try:
        ref = parse(repo)
        if ref.digest:
            raise InvalidParameter("cannot create a tag with a digest reference")
        return str(ref.with_tag(tag) if tag else ref)
    except (InvalidReference, ValueError) as e:
        if isinstance(e, InvalidParameter):
            raise
        raise InvalidParameter(str(e)) from None


def merge(config: dict, container: dict) -> dict:
    """moby's merge(userConf, imageConf): what the new config leaves unset is taken from the
    container's config (ports, env and labels are added to)."""
    config = copy.deepcopy(config)
    config["User"] = config.get("User") or container.get("User") or ""
    if not config.get("ExposedPorts"):
        config["ExposedPorts"] = container.get("ExposedPorts")
    else:
        for port in container.get("ExposedPorts") or {}:
            config["ExposedPorts"].setdefault(port, {})
    if not config.get("Env"):
        config["Env"] = container.get("Env")
    else:
        keys = {e.split("=", 1)[0] for e in config["Env"]}
        config["Env"] = [*config["Env"], *(e for e in container.get("Env") or [] if e.split("=", 1)[0] not in keys)]
    config["Labels"] = {**(container.get("Labels") or {}), **(config.get("Labels") or {})}
    if not config.get("Entrypoint"):
        if not config.get("Cmd"):
            config["Cmd"] = container.get("Cmd")
        if config.get("Entrypoint") is None:
            config["Entrypoint"] = container.get("Entrypoint")
    if container.get("Healthcheck"):
        if not config.get("Healthcheck"):
            config["Healthcheck"] = container["Healthcheck"]
        else:
            for key, value in container["Healthcheck"].items():
                if not config["Healthcheck"].get(key):
                    config["Healthcheck"][key] = value
    config["WorkingDir"] = config.get("WorkingDir") or container.get("WorkingDir") or ""
    if not config.get("Volumes"):
        config["Volumes"] = container.get("Volumes")
    else:
        config["Volumes"].update(container.get("Volumes") or {})
    config["StopSignal"] = config.get("StopSignal") or container.get("StopSignal") or ""
    return config


def _rfc3339(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


class Committer:
    def __init__(self, containers) -> None:
        self.containers = containers  # the ContainerService
        self.images = containers.images

    async def commit(self, ref: str, *, repo: str = "", tag: str = "", author: str = "", comment: str = "",
                     pause: bool = True, changes: list[str] = (), config: dict | None = None) -> str:
        """The new image's ID."""
        record = self.containers.get(ref)
        name = image_name(repo, tag)
        if config is not None and not isinstance(config, dict):
            raise InvalidParameter("the request body must be a JSON object (a container config)")
        try:
            new_config = apply_changes(config or record["Config"], list(changes))
        except ChangeError as e:
            raise InvalidParameter(str(e)) from None
        new_config = merge(new_config, record["Config"])
        if record["State"].get("Dead"):
            raise Conflict(f"You cannot commit container {record['Id']} which is Dead")
        try:
            parent = self.images.resolve(record["Image"])
        except NotFound:
            raise NotFound(f"the image {record['Image']} of container {record['Id'][:12]} no longer exists") from None
        paused_here = pause and record["State"]["Running"] and not record["State"]["Paused"]
        if paused_here:
            await self.containers.pause(record["Id"])
        try:
            layer, entries = await asyncio.to_thread(self._store_layer, record)
        finally:
            if paused_here:
                await self.containers.unpause(record["Id"])
        image_id = await asyncio.to_thread(self._store_image, record, parent, new_config, layer if entries else None,
                                           name, author, comment)
        imageref = ""
        if name:
            imageref = parse(name).familiar
        self.containers.event(record, "commit", comment=comment, imageID=image_id, imageRef=imageref)
        return image_id

    def _store_layer(self, record: dict):
        """The upper directory as a layer blob, written in a view chrooted into it."""
        upper = self.images.snapshotter.upper_path(record["Orlop"]["Snapshot"])
        read_fd, write_fd = os.pipe()
        view = ContainerFSView(upper, name=f"commit-{record['Id'][:12]}").open()
        try:
            written = view.submit(_write_layer, write_fd)
            write_fd = -1
            with os.fdopen(read_fd, "rb") as reader:
                read_fd = -1
                try:
                    blob = store_tar(lambda out: shutil.copyfileobj(reader, out, 1 << 20), self.images.content)
                except BaseException:
                    reader.close()          # the writer then fails with EPIPE instead of blocking
                    raise
            return blob, written.result()
        finally:
            for fd in (read_fd, write_fd):
                if fd >= 0:
                    os.close(fd)
            view.close()

    def _store_image(self, record: dict, parent: ImageRecord, config: dict, layer, name: str | None,
                     author: str, comment: str) -> str:
        content, store = self.images.content, self.images.images
        image = json.loads(content.read(parent.config))
        layers = list(json.loads(content.read(parent.manifest)).get("layers") or [])
        created = _rfc3339(time.time())
        history = {"created": created}
        if author:
            history["author"] = author
        history["created_by"] = " ".join(record["Config"].get("Cmd") or [])
        if comment:
            history["comment"] = comment
        if layer is None:
            history["empty_layer"] = True
        else:
            image.setdefault("rootfs", {"type": "layers", "diff_ids": []}).setdefault("diff_ids", []).append(
                layer.diff_id)
            layers.append(layer.descriptor())
        image["history"] = [*(image.get("history") or []), history]
        image.update(created=created, container=record["Id"], container_config=record["Config"], config=config)
        for key, value in (("author", author), ("comment", comment)):
            if value:
                image[key] = value
            else:
                image.pop(key, None)
        image.setdefault("os", "linux")
        config_bytes = json.dumps(image, separators=(",", ":")).encode()
        config_digest = content.put(config_bytes)
        manifest = {"schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
                    "config": {"mediaType": DOCKER_CONFIG, "size": len(config_bytes), "digest": config_digest},
                    "layers": layers}
        manifest_digest = content.put(json.dumps(manifest, separators=(",", ":")).encode())
        store.put(ImageRecord(name or dangling_name(config_digest), manifest_digest, manifest_digest, config_digest))
        return config_digest


def _write_layer(write_fd: int) -> int:
    """In the view chrooted into the upper directory: its layer tar into the pipe."""
    with os.fdopen(write_fd, "wb") as out:
        try:
            return tarwrite.write_layer("/", out, LAYER_EXCLUDES)
        except BrokenPipeError:
            raise OrlopError("the layer's reader went away") from None
