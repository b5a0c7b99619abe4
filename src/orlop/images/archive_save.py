"""`docker save`: images as the archive Docker 25+ writes, both a docker-save archive and
an OCI image layout:

    blobs/sha256/<hex>   every config, layer and manifest, once (a layer shared by two
                         images too): layers as plain tars, so a layer's digest is its diff ID
    manifest.json        [{"Config": "blobs/sha256/<config>", "RepoTags": ["busybox:latest"],
                           "Layers": ["blobs/sha256/<diff id>", ...]}]   (docker load, podman load)
    repositories         {"busybox": {"latest": "<top layer>"}}         (pre-1.10 loaders)
    oci-layout           {"imageLayoutVersion": "1.0.0"}
    index.json           one OCI manifest descriptor per name, annotated with
                         io.containerd.image.name (docker.io/library/busybox:latest) and
                         org.opencontainers.image.ref.name (latest); unnamed images unannotated

Registries hand out compressed layers: saving decompresses each one into a spool file
(a tar member needs its size first) and checks it against the config's diff ID.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import tempfile
from datetime import datetime
from typing import BinaryIO

from orlop.images.archive_format import (
    ANNOTATION_IMAGE_NAME,
    ANNOTATION_REF_NAME,
    OCI_INDEX,
    OCI_LAYOUT,
    OCI_MANIFEST,
    ArchiveError,
    compact,
    copy_hashed,
    decompressed,
    layer_descriptor,
    oci_manifest,
)
from orlop.images.content import ContentStore
from orlop.images.reference import InvalidReference, parse
from orlop.images.store import ImageRecord


def save(records: list[tuple[ImageRecord, list[str]]], content: ContentStore, out: str | BinaryIO) -> None:
    """Write images, each with the (normalised, tagged) names to record for it, to the path
    `out` (atomically: a temporary file renamed) or to the writable stream `out`."""
    if isinstance(out, (str, os.PathLike)):
        tmp = f"{out}.tmp{os.getpid()}"
        try:
            with open(tmp, "wb") as f:
                save(records, content, f)
            os.rename(tmp, out)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        _Writer(tar, content).write(records)


class _Writer:
    def __init__(self, tar: tarfile.TarFile, content: ContentStore) -> None:
        self.tar, self.content = tar, content
        self.written: dict[str, int] = {}    # digest -> size, of the blobs in the archive

    def write(self, records: list[tuple[ImageRecord, list[str]]]) -> None:
        for directory in ("blobs", "blobs/sha256"):
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            self.tar.addfile(info)
        entries, descriptors, repositories = [], [], {}
        for record, names in records:
            descriptor, config, diff_ids = self._image(record)
            tagged = [ref for ref in map(_parse, names) if ref is not None and ref.tag]
            platform = {k: config[k] for k in ("architecture", "os", "variant") if config.get(k)}
            for ref in tagged or [None]:
                named = {**descriptor}
                if ref is not None:
                    named["annotations"] = {ANNOTATION_IMAGE_NAME: str(ref), ANNOTATION_REF_NAME: ref.tag}
                    repositories.setdefault(ref.familiar_name, {})[ref.tag] = diff_ids[-1].split(":")[-1]
                descriptors.append({**named, "platform": platform} if platform else named)
            entries.append({"Config": _path(record.config), "RepoTags": [ref.familiar for ref in tagged] or None,
                            "Layers": [_path(d) for d in diff_ids]})
        self._file("index.json", compact({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descriptors}))
        self._file("manifest.json", compact(entries) + b"\n")
        self._file("oci-layout", OCI_LAYOUT.encode())
        if repositories:
            self._file("repositories", compact(repositories) + b"\n")

    def _image(self, record: ImageRecord) -> tuple[dict, dict, list[str]]:
        """Put an image's config, layers and manifest in; returns the manifest's descriptor,
        the config and its diff IDs."""
        config_bytes = self.content.read(record.config)
        config = json.loads(config_bytes)
        created = _epoch(config.get("created"))
        self._blob(record.config, io.BytesIO(config_bytes), len(config_bytes), created)
        diff_ids = config["rootfs"]["diff_ids"]
        layers = json.loads(self.content.read(record.manifest))["layers"]
        if not diff_ids or len(layers) != len(diff_ids):
            raise ArchiveError(f"image {record.config}: the manifest has {len(layers)} layers, the config "
                               f"{len(diff_ids)} diff IDs")
        sizes = [self._layer(layer["digest"], diff_id, created) for layer, diff_id in zip(layers, diff_ids, strict=True)]
        manifest = oci_manifest(record.config, len(config_bytes),
                                [layer_descriptor(d, s) for d, s in zip(diff_ids, sizes, strict=True)])
        digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
        self._blob(digest, io.BytesIO(manifest), len(manifest), 0)
        return {"mediaType": OCI_MANIFEST, "digest": digest, "size": len(manifest)}, config, diff_ids

    def _layer(self, digest: str, diff_id: str, mtime: float) -> int:
        """Put the layer in as a plain tar (once); returns its size."""
        if diff_id in self.written:
            return self.written[diff_id]
        if digest == diff_id:                   # stored uncompressed (a loaded or imported image)
            with self.content.open(digest) as blob:
                self._blob(diff_id, blob, os.fstat(blob.fileno()).st_size, mtime)
            return self.written[diff_id]
        with self.content.open(digest) as blob, tempfile.TemporaryFile(dir=self.content.root) as spool:
            got, size = copy_hashed(decompressed(blob), spool)
            if got != diff_id:
                raise ArchiveError(f"layer {digest} decompresses to {got}, but the image config says {diff_id}")
            spool.seek(0)
            self._blob(diff_id, spool, size, mtime)
        return size

    def _blob(self, digest: str, data: BinaryIO, size: int, mtime: float) -> None:
        if digest not in self.written:
            self._file(_path(digest), data, size, mtime)
            self.written[digest] = size

    def _file(self, name: str, data: bytes | BinaryIO, size: int | None = None, mtime: float = 0) -> None:
        if isinstance(data, bytes):
            data, size = io.BytesIO(data), len(data)
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = size, 0o644, mtime
        self.tar.addfile(info, data)


def _path(digest: str) -> str:
    return "blobs/" + digest.replace(":", "/", 1)


def _parse(name: str):
    try:
        return parse(name)
    except InvalidReference:
        return None


def _epoch(created) -> float:
    """An RFC 3339 time (Go's, with nanoseconds) as seconds since the epoch; 0 if there is none."""
    try:
        return max(0.0, datetime.fromisoformat(created).timestamp())
    except (TypeError, ValueError):
        return 0
