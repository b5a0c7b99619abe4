"""`docker import`: a root filesystem tar (plain, gzip, zstd, bzip2 or xz) as a one-layer image.

The tar is stored uncompressed (its sha256 is the layer's diff ID, as dockerd computes
it), under a config made as dockerd makes it: the host's (or the given) platform, the
`--change` instructions applied to an empty container config, the message as comment
and as the one history entry. With a snapshotter the layer is unpacked at once, which
refuses a tar that is not one, or is hostile, before the image gets its name.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import BinaryIO

from orlop.images.archive_format import (
    ArchiveError,
    compact,
    copy_hashed,
    decompressed,
    layer_descriptor,
    oci_manifest,
)
from orlop.images.changes import apply_changes
from orlop.images.content import ContentStore
from orlop.images.pull import host_platform
from orlop.images.store import ImageRecord, ImageStore, dangling_name


def image_config(diff_id: str, *, changes: Iterable[str] = (), message: str = "", platform: dict | None = None,
                 created: datetime | None = None) -> dict:
    platform = platform or host_platform()
    when = (created or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    config = {"architecture": platform["architecture"]}
    if message:
        config["comment"] = message
    config.update({"config": apply_changes({}, changes), "created": when,
                   "history": [{"created": when, **({"comment": message} if message else {})}],
                   "os": platform.get("os", "linux"), "rootfs": {"type": "layers", "diff_ids": [diff_id]}})
    if platform.get("variant"):
        config["variant"] = platform["variant"]
    return config


def import_rootfs(source: BinaryIO, content: ContentStore, images: ImageStore, *, name: str | None = None,
                  changes: Iterable[str] = (), message: str = "", platform: dict | None = None,
                  snapshotter=None) -> ImageRecord:
    """Import the tar read from `source`; `name` is a normalised reference (None: the image
    is kept without a name, as dockerd's `docker import x.tar`)."""
    changes = list(changes)
    apply_changes({}, changes)               # a bad --change fails before the tar is read
    with content.writer(f"import-{uuid.uuid4().hex}") as writer:
        diff_id, size = copy_hashed(decompressed(source), writer)
        if size == 0:
            raise ArchiveError("the tar to import is empty")
        writer.commit()
    config_bytes = compact(image_config(diff_id, changes=changes, message=message, platform=platform))
    config = content.put(config_bytes)
    manifest = content.put(oci_manifest(config, len(config_bytes), [layer_descriptor(diff_id, size)]))
    record = ImageRecord(name or dangling_name(config), manifest, manifest, config)
    if snapshotter is not None:
        from orlop.images.unpack import unpack_image
        from orlop.snapshots.unpack import LayerError

        try:
            unpack_image(record, content, snapshotter)
        except LayerError as e:
            raise ArchiveError(f"cannot import: {e}") from None
    images.put(record)
    return record

