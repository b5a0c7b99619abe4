"""A build step's layer: the changes in an overlay upper directory written as an OCI layer
tar, with overlayfs's deletions turned back into the tar format's whiteouts (a 0:0
character device → `.wh.<name>`, an opaque directory → `<dir>/.wh..wh..opq`).

The tar is deterministic (sorted names, the files' own metadata, PAX headers), so that the
same changes give the same diff ID. It is stored gzip-compressed in the content store,
as a registry expects; the uncompressed digest is the diff ID in the image config.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import secrets
import stat
import tarfile

from orlop.images.content import ContentStore

GZIP_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OPAQUE_XATTR = "trusted.overlay.opaque"


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _xattrs(path: str) -> dict[str, str]:
    out = {}
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return out
    for name in names:
        if name.startswith("trusted.overlay."):
            continue
        try:
            out["SCHILY.xattr." + name] = os.getxattr(path, name, follow_symlinks=False).decode("utf-8",
                                                                                          "surrogateescape")
        except OSError:
            continue
    return out


def _opaque(path: str) -> bool:
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def write_tar(upper: str, out) -> None:
    """The upper directory's changes as a layer tar written to the binary file `out`."""
    hardlinks: dict[tuple[int, int], str] = {}
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for directory, dirs, files in os.walk(upper):
            dirs.sort()
            rel_dir = os.path.relpath(directory, upper)
            if rel_dir != "." and _opaque(directory):
                _add_marker(tar, os.path.join(rel_dir, ".wh..wh..opq"), os.lstat(directory))
            for name in sorted(dirs + files):
                path = os.path.join(directory, name)
                rel = os.path.normpath(os.path.join(rel_dir, name))
                st = os.lstat(path)
                if _is_whiteout(st):
                    _add_marker(tar, os.path.join(os.path.dirname(rel), ".wh." + name), st)
                    continue
                info = tar.gettarinfo(path, arcname=rel)
                info.uname = info.gname = ""
                info.pax_headers = _xattrs(path)
                if info.isreg() and st.st_nlink > 1:
                    key = (st.st_dev, st.st_ino)
                    if key in hardlinks:
                        info.type, info.linkname, info.size = tarfile.LNKTYPE, hardlinks[key], 0
                        tar.addfile(info)
                        continue
                    hardlinks[key] = rel
                if info.isreg():
                    with open(path, "rb") as f:
                        tar.addfile(info, f)
                else:
                    tar.addfile(info)


def _add_marker(tar: tarfile.TarFile, name: str, st: os.stat_result) -> None:
    info = tarfile.TarInfo(os.path.normpath(name))
    info.mtime = int(st.st_mtime)
    info.mode = 0o644
    tar.addfile(info)


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


def store_layer(upper: str, content: ContentStore) -> LayerBlob:
    """Write the layer of `upper` into the content store (gzip, written once: the blob is
    committed under its digest only when complete); its diff ID and blob."""
    with content.writer(f"build-layer-{secrets.token_hex(8)}") as writer:
        compressed = _Hashing(writer)
        with gzip.GzipFile(fileobj=compressed, mode="wb", mtime=0, compresslevel=6) as gz:
            uncompressed = _Hashing(gz)
            write_tar(upper, uncompressed)
        digest = "sha256:" + compressed.hash.hexdigest()
        if content.exists(digest):
            writer.truncate()  # the same layer was built before
        else:
            digest = writer.commit()
        return LayerBlob("sha256:" + uncompressed.hash.hexdigest(), digest, compressed.size)
