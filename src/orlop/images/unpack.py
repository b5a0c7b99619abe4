"""Unpack a pulled image's layers into committed overlay snapshots keyed by chain ID.

Layers already unpacked (by this image or another sharing a base) are skipped by
chain ID; each new one is streamed from the content store through the verified
unpacker, which checks it against the config's diff ID before committing.
"""

from __future__ import annotations

import json

from orlop.images.content import ContentStore
from orlop.images.pull import Progress, short_id
from orlop.images.store import ImageRecord
from orlop.snapshots import OverlaySnapshotter


def unpack_image(record: ImageRecord, content: ContentStore, snapshotter: OverlaySnapshotter,
                 progress: Progress | None = None) -> str:
    """Returns the chain ID of the top layer: the parent of the image's containers."""
    emit = progress or (lambda event: None)
    manifest = json.loads(content.read(record.manifest))
    diff_ids = json.loads(content.read(record.config))["rootfs"]["diff_ids"]
    if len(diff_ids) != len(manifest["layers"]):
        raise ValueError(f"image {record.name}: the config lists {len(diff_ids)} layers, the manifest "
                         f"{len(manifest['layers'])}")
    parent = None
    for layer, diff_id in zip(manifest["layers"], diff_ids, strict=True):
        layer_id = short_id(layer["digest"])
        with content.open(layer["digest"]) as blob:
            reader = _ReportingReader(blob, layer.get("size") or 0, layer_id, emit) if progress else blob
            parent, stats = snapshotter.apply_layer(reader, parent, diff_id=diff_id)
        emit({"status": "Pull complete" if stats else "Already exists", "id": layer_id})
    return parent


class _ReportingReader:
    """Reports "Extracting" progress (bytes of the stored blob read) about every 4 MiB."""

    STEP = 4 << 20

    def __init__(self, blob, total: int, layer_id: str, emit: Progress) -> None:
        self.blob, self.total, self.layer_id, self.emit = blob, total, layer_id, emit
        self.done = self.reported = 0

    def read(self, size: int = -1) -> bytes:
        data = self.blob.read(size)
        self.done += len(data)
        if self.done - self.reported >= self.STEP or (not data and self.done > self.reported):
            self.reported = self.done
            self.emit({"status": "Extracting", "id": self.layer_id,
                       "progressDetail": {"current": self.done, "total": self.total}})
        return data

    def __getattr__(self, name: str):  # seek, tell, readinto... of the underlying file
        return getattr(self.blob, name)
