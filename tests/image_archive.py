"""A `docker save`-format image archive made from a root filesystem directory,
for loading a test image into engines (docker load, podman load, ctr import)
without a registry."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    tar.addfile(info, io.BytesIO(data))


def _layer_from_files(files: dict[str, bytes | None]) -> bytes:
    """A layer from {path: content}; None makes a whiteout deleting that path."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as layer:
        for name, data in files.items():
            if data is None:
                directory, base = os.path.split(name)
                _add_bytes(layer, os.path.join(directory, f".wh.{base}"), b"")
            else:
                _add_bytes(layer, name, data)
    return buffer.getvalue()


def make_docker_archive(rootfs: str, path: str, tag: str, cmd: list[str] | None = None,
                        extra_layers: list[dict[str, bytes | None]] = ()) -> str:
    """An image whose first layer is `rootfs`, then one layer per `extra_layers` entry."""
    layer_buffer = io.BytesIO()
    with tarfile.open(fileobj=layer_buffer, mode="w", format=tarfile.PAX_FORMAT) as layer:
        for name in sorted(os.listdir(rootfs)):
            layer.add(os.path.join(rootfs, name), arcname=name)
    layers = [layer_buffer.getvalue(), *(_layer_from_files(files) for files in extra_layers)]
    diff_ids = [hashlib.sha256(data).hexdigest() for data in layers]
    config = {
        "architecture": {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine),
        "os": "linux",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                   "Cmd": cmd or ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{d}" for d in diff_ids]},
        "history": [{"created_by": "tests/image_archive.py", "created": "1970-01-01T00:00:00Z"} for _ in layers],
        "created": "1970-01-01T00:00:00Z",
    }
    config_bytes = json.dumps(config).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    manifest = [{"Config": config_name, "RepoTags": [tag], "Layers": [f"{d}/layer.tar" for d in diff_ids]}]
    with tarfile.open(path, "w") as archive:
        for diff_id, data in zip(diff_ids, layers, strict=True):
            _add_bytes(archive, f"{diff_id}/layer.tar", data)
        _add_bytes(archive, config_name, config_bytes)
        _add_bytes(archive, "manifest.json", json.dumps(manifest).encode())
    return path
