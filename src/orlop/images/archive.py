"""`docker save` / `docker load` archives.

The format: `manifest.json` ([{"Config": "<hex>.json", "RepoTags": [...], "Layers":
["<dir>/layer.tar", ...]}]), the config blobs, and each layer as an *uncompressed*
tar whose sha256 is the diff ID in the config. Registries hand out compressed
layers, so saving decompresses each one (spooled to a temp file: a tar member
needs its size up front); loading stores the uncompressed layers as they are,
under an OCI manifest written for them.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import tempfile
import zlib

from orlop.images.content import ContentStore
from orlop.images.store import ImageRecord, ImageStore

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"


class ArchiveError(ValueError):
    pass


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _decompressed(blob, spool) -> None:
    """Copy a layer blob into `spool`, gunzipping or un-zstd-ing it if it is compressed."""
    head = blob.read(4)
    blob.seek(0)
    if head[:2] == b"\x1f\x8b":
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        while chunk := blob.read(1 << 20):
            spool.write(inflater.decompress(chunk))
        spool.write(inflater.flush())
    elif head == b"\x28\xb5\x2f\xfd":
        import zstandard

        zstandard.ZstdDecompressor().copy_stream(blob, spool)
    else:
        shutil.copyfileobj(blob, spool, 1 << 20)


def save(records: list[tuple[ImageRecord, list[str]]], content: ContentStore, out_path: str) -> None:
    """Write images (each with the familiar tags to record) as a docker-save archive."""
    entries = []
    tmp = out_path + ".tmp"
    with tarfile.open(tmp, "w") as archive:
        written: set[str] = set()
        for record, tags in records:
            config_bytes = content.read(record.config)
            config_name = record.config.split(":", 1)[1] + ".json"
            if config_name not in written:
                _add_bytes(archive, config_name, config_bytes)
                written.add(config_name)
            manifest = json.loads(content.read(record.manifest))
            diff_ids = json.loads(config_bytes)["rootfs"]["diff_ids"]
            layer_names = []
            for layer, diff_id in zip(manifest["layers"], diff_ids, strict=True):
                name = diff_id.split(":", 1)[1] + "/layer.tar"
                layer_names.append(name)
                if name in written:
                    continue
                with content.open(layer["digest"]) as blob, tempfile.TemporaryFile() as spool:
                    _decompressed(blob, spool)
                    info = tarfile.TarInfo(name)
                    info.size = spool.tell()
                    spool.seek(0)
                    archive.addfile(info, spool)
                written.add(name)
            entries.append({"Config": config_name, "RepoTags": tags, "Layers": layer_names})
        _add_bytes(archive, "manifest.json", json.dumps(entries).encode())
    os.rename(tmp, out_path)


def load(archive_path: str, content: ContentStore, images: ImageStore, normalise) -> list[ImageRecord]:
    """Import a docker-save archive; `normalise` turns a RepoTag into the stored name."""
    loaded = []
    with tarfile.open(archive_path, "r:*") as archive:
        try:
            entries = json.load(archive.extractfile("manifest.json"))
        except KeyError:
            raise ArchiveError(f"{archive_path}: not a docker save archive (no manifest.json)") from None
        for entry in entries:
            config_bytes = _member(archive, entry["Config"]).read()
            config_digest = content.put(config_bytes)
            diff_ids = json.loads(config_bytes)["rootfs"]["diff_ids"]
            layers = []
            for name, diff_id in zip(entry["Layers"], diff_ids, strict=True):
                member = archive.getmember(name)
                with content.writer(f"load-{diff_id}", diff_id, member.size) as writer:
                    if not writer.committed:
                        if writer.offset:
                            writer.truncate()
                        stream = archive.extractfile(member)
                        while chunk := stream.read(1 << 20):
                            writer.write(chunk)
                        writer.commit()
                layers.append({"mediaType": OCI_LAYER, "digest": diff_id, "size": member.size})
            manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config_bytes)},
                        "layers": layers}
            manifest_digest = content.put(json.dumps(manifest, separators=(",", ":")).encode())
            for tag in entry.get("RepoTags") or []:
                record = ImageRecord(normalise(tag), manifest_digest, manifest_digest, config_digest)
                images.put(record)
                loaded.append(record)
    return loaded


def _member(archive: tarfile.TarFile, name: str):
    try:
        return archive.extractfile(name)
    except KeyError:
        raise ArchiveError(f"archive lists {name} in manifest.json but does not contain it") from None
