"""What save, load and import share: media types, annotation names, the error, and the
OCI manifest Docker writes for an image whose layers are plain tars (digest = diff ID)."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import json
import lzma
import zlib
from typing import BinaryIO

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = OCI_LAYER + "+gzip"
OCI_LAYER_ZSTD = OCI_LAYER + "+zstd"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
OCI_LAYOUT = '{"imageLayoutVersion": "1.0.0"}'   # as Docker writes it (with the space)
ANNOTATION_IMAGE_NAME = "io.containerd.image.name"       # the full name: docker.io/library/busybox:latest
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"  # OCI: the tag ("latest"); some tools put a name

_CHUNK = 1 << 20


class ArchiveError(ValueError):
    """The archive (or tar to import) is malformed, incomplete or hostile."""


def compact(document) -> bytes:
    """JSON as Go's json.Marshal writes it (no spaces), so digests come out as Docker's."""
    return json.dumps(document, separators=(",", ":")).encode()


def layer_descriptor(digest: str, size: int, media_type: str = OCI_LAYER) -> dict:
    return {"mediaType": media_type, "digest": digest, "size": size}


def oci_manifest(config_digest: str, config_size: int, layers: list[dict]) -> bytes:
    """An OCI image manifest; with plain-tar layers named by their diff ID, it is the one
    `docker save` (25+) writes, byte for byte (Go's encoding), so its digest is Docker's."""
    return compact({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config_size},
        "layers": layers})


def compression_of(head: bytes) -> str:
    """"gzip", "zstd", "bzip2", "xz" or "none", from a stream's first bytes."""
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return "zstd"
    if head.startswith(b"BZh"):
        return "bzip2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    return "none"


class Peekable:
    """A read()-able stream whose first bytes can be looked at before anyone reads them."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._head = b""

    def peek(self, n: int) -> bytes:
        while len(self._head) < n:
            data = self._stream.read(n - len(self._head))
            if not data:
                break
            self._head += data
        return self._head[:n]

    def read(self, n: int = -1) -> bytes:
        if self._head:
            if n < 0:
                data, self._head = self._head + self._stream.read(), b""
                return data
            data, self._head = self._head[:n], self._head[n:]
            return data
        return self._stream.read(n)


def decompressed(stream: BinaryIO) -> BinaryIO:
    """`stream` with gzip, zstd, bzip2 or xz compression taken off (as Docker's DecompressStream);
    broken compressed data raises ArchiveError."""
    source = Peekable(stream)
    kind = compression_of(source.peek(6))
    if kind == "gzip":
        return _Checked(gzip.GzipFile(fileobj=source, mode="rb"), kind)
    if kind == "bzip2":
        return _Checked(bz2.BZ2File(source), kind)
    if kind == "xz":
        return _Checked(lzma.LZMAFile(source), kind)
    if kind == "zstd":
        import zstandard

        reader = zstandard.ZstdDecompressor().stream_reader(source, read_size=_CHUNK, read_across_frames=True)
        return _Checked(reader, kind)
    return source


class _Checked:
    """A decompressing reader whose codec errors become ArchiveError."""

    def __init__(self, reader, kind: str) -> None:
        self._reader, self._kind = reader, kind

    def read(self, n: int = -1) -> bytes:
        try:
            return self._reader.read(n)
        except (OSError, EOFError, zlib.error, lzma.LZMAError) as e:   # gzip and bz2 raise OSError
            raise ArchiveError(f"corrupt or truncated {self._kind} data: {e}") from None
        except Exception as e:
            if type(e).__name__ == "ZstdError":
                raise ArchiveError(f"corrupt {self._kind} data: {e}") from None
            raise


def copy_hashed(source: BinaryIO, target, hasher=None) -> tuple[str, int]:
    """Copy `source` to `target` (anything with write()); returns (sha256 digest, size)."""
    hasher = hasher or hashlib.sha256()
    size = 0
    while chunk := source.read(_CHUNK):
        hasher.update(chunk)
        target.write(chunk)
        size += len(chunk)
    return "sha256:" + hasher.hexdigest(), size
