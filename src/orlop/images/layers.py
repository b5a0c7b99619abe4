"""A layer tar stored as an image layer blob: gzip-compressed into the content store (as a
registry expects), hashed on the way in both forms — the uncompressed digest is the diff ID
in the image config, the compressed one the blob's digest in the manifest."""

from __future__ import annotations

import gzip
import hashlib
import secrets
from collections.abc import Callable

from orlop.images.content import ContentStore

GZIP_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"


class LayerBlob:
    __slots__ = ("diff_id", "digest", "size", "media_type")

    def __init__(self, diff_id: str, digest: str, size: int, media_type: str = GZIP_LAYER) -> None:
        self.diff_id, self.digest, self.size, self.media_type = diff_id, digest, size, media_type

    def descriptor(self) -> dict:
        return {"mediaType": self.media_type, "size": self.size, "digest": self.digest}


class _Hashing:
    """A file-like sink hashing and counting what is written through it."""

    def __init__(self, sink) -> None:
        self.sink, self.hash, self.size = sink, hashlib.sha256(), 0

    def write(self, data) -> int:
        self.hash.update(data)
        self.size += len(data)
        self.sink.write(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass


def store_tar(write_tar: Callable[[object], object], content: ContentStore) -> LayerBlob:
    """Store the tar that `write_tar(out)` writes to `out` as a gzip layer blob (written once:
    the blob is committed under its digest only when complete); its diff ID and blob."""
    with content.writer(f"layer-{secrets.token_hex(8)}") as writer:
        compressed = _Hashing(writer)
        with gzip.GzipFile(fileobj=compressed, mode="wb", mtime=0, compresslevel=6) as gz:
            uncompressed = _Hashing(gz)
            write_tar(uncompressed)
        digest = "sha256:" + compressed.hash.hexdigest()
        if content.exists(digest):
            writer.truncate()  # the same layer was stored before
        else:
            digest = writer.commit()
        return LayerBlob("sha256:" + uncompressed.hash.hexdigest(), digest, compressed.size)
