"""`docker load`: images from a docker-save archive (old `<id>/layer.tar` ones and Docker
25+'s, which are OCI layouts too) or from a plain OCI image layout (`oci-archive`, as
skopeo and podman write it); gzip, zstd, bzip2 or xz compressed archives as well.

Three steps, so that a bad archive leaves no name behind: read the archive into the
content store (archive_tar), work out and check every image it holds (manifest, config,
each layer present, as many layers as diff IDs), and only then name them.

Names: a docker-save archive's `RepoTags`; in an OCI layout, a manifest's
`io.containerd.image.name` annotation (the full name, as Docker and containerd write it),
or else `org.opencontainers.image.ref.name` when that is a name (`localhost/app:1`, as
skopeo and podman write it) rather than a bare tag (`latest`, the OCI convention), which
names nothing. An image without a name is kept as a dangling one (`<none>`), as Docker does.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import BinaryIO, NamedTuple

from orlop.images.archive_format import (
    ANNOTATION_IMAGE_NAME,
    ANNOTATION_REF_NAME,
    OCI_INDEX,
    OCI_LAYER,
    OCI_LAYER_GZIP,
    OCI_LAYER_ZSTD,
    ArchiveError,
    compression_of,
    layer_descriptor,
    oci_manifest,
)
from orlop.images.archive_tar import ArchiveIndex, read_archive
from orlop.images.content import ContentError, ContentStore
from orlop.images.manage import reachable_blobs
from orlop.images.pull import INDEX_TYPES, host_platform, select_manifest
from orlop.images.reference import InvalidReference, parse
from orlop.images.store import ImageNotFound, ImageRecord, ImageStore, dangling_name


class Loaded(NamedTuple):
    """One line of `docker load`'s report: an image ID with one of its names (None: none)."""
    image_id: str
    name: str | None
    replaced: str | None = None   # the image ID the name pointed at before, if another


class _Image:
    def __init__(self, target: str, manifest: str, config: str) -> None:
        self.target, self.manifest, self.config = target, manifest, config
        self.names: list[str] = []

    def add_names(self, names) -> None:
        self.names.extend(n for n in names if n not in self.names)


def _normalise(name: str) -> str:
    try:
        return str(parse(name))
    except InvalidReference as e:
        raise ArchiveError(f"invalid image name {name!r} in the archive: {e}") from None


def load(source: str | BinaryIO, content: ContentStore, images: ImageStore, *,
         normalise: Callable[[str], str] = _normalise, platform: dict | None = None) -> list[Loaded]:
    """Load every image of the archive at path `source` (or read from a stream); returns
    what was loaded, in the archive's order."""
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as f:
            return load(f, content, images, normalise=normalise, platform=platform)
    index = ArchiveIndex(content)
    try:
        read_archive(source, content, index)
        found = _images(index, content, normalise, platform or host_platform())
        return _name(found, images)
    except BaseException:
        _release(index.written, images, content)
        raise


def _release(written: set[str], images: ImageStore, content: ContentStore) -> None:
    """A load that failed (a bad archive, a full disk) takes back the blobs it added that no
    image uses, as dockerd releases the layers of a load that goes no further."""
    for digest in written - reachable_blobs(images, content):
        content.delete(digest)


def _images(index: ArchiveIndex, content: ContentStore, normalise, platform: dict) -> list[_Image]:
    has_layout, has_manifest = "index.json" in index, "manifest.json" in index
    if not has_layout and not has_manifest:
        if "repositories" in index:
            raise ArchiveError("this is a pre-1.10 `docker save` archive (only `repositories`, no manifest.json): "
                               "not supported")
        raise ArchiveError("not a docker save archive nor an OCI image layout (no manifest.json, no index.json)")
    found: dict[str, _Image] = {}   # by image ID
    if has_layout:
        layout = index.read_json("index.json", "OCI index")
        for descriptor in _objects(layout.get("manifests") if isinstance(layout, dict) else None, "index.json"):
            image = _from_descriptor(descriptor, content, platform)
            if image is None:
                continue
            image = found.setdefault(image.config, image)
            image.add_names(_annotated_names(descriptor.get("annotations") or {}, normalise))
    if has_manifest:
        for entry in _objects(index.read_json("manifest.json", "manifest.json"), "manifest.json"):
            config_digest, config_bytes = _entry_config(entry, index, content)
            image = found.get(config_digest) or found.setdefault(
                config_digest, _from_entry(entry, config_digest, config_bytes, index, content))
            image.add_names(normalise(tag) for tag in entry.get("RepoTags") or [])
    return list(found.values())


def _objects(items, what: str) -> list[dict]:
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise ArchiveError(f"{what} is malformed: expected a list of objects")
    return items


def _annotated_names(annotations: dict, normalise) -> list[str]:
    name = annotations.get(ANNOTATION_IMAGE_NAME)
    if name:
        return [normalise(name)]
    ref = annotations.get(ANNOTATION_REF_NAME) or ""
    if ("/" in ref or ":" in ref) and "@" not in ref:   # "localhost/app:1", not "latest"
        return [normalise(ref)]
    return []


def _check_blob(content: ContentStore, descriptor: dict, what: str) -> str:
    digest, size = descriptor.get("digest"), descriptor.get("size")
    try:
        present = isinstance(digest, str) and content.exists(digest)
    except ContentError as e:   # not sha256:<hex>
        raise ArchiveError(f"{what}: {e}") from None
    if not present:
        raise ArchiveError(f"the archive lacks the {what} {digest} (blobs/{str(digest).replace(':', '/')})")
    if isinstance(size, int) and content.size(digest) != size:
        raise ArchiveError(f"the {what} {digest} has {content.size(digest)} bytes, its descriptor says {size}")
    return digest


def _json_blob(content: ContentStore, digest: str, what: str) -> dict:
    try:
        document = json.loads(content.read(digest))
    except ValueError as e:
        raise ArchiveError(f"the {what} {digest} is not valid JSON: {e}") from None
    if not isinstance(document, dict):
        raise ArchiveError(f"the {what} {digest} is not a JSON object")
    return document


def _diff_ids(config: dict, digest: str) -> list:
    diff_ids = (config.get("rootfs") or {}).get("diff_ids") if isinstance(config.get("rootfs"), dict) else None
    if not isinstance(diff_ids, list):
        raise ArchiveError(f"the image config {digest} has no rootfs.diff_ids")
    return diff_ids


def _from_descriptor(descriptor: dict, content: ContentStore, platform: dict) -> _Image | None:
    """The image an index.json entry names (for an index: this platform's manifest);
    None for what is not an image (artifacts, attestations)."""
    media_type = descriptor.get("mediaType")
    target = _check_blob(content, descriptor, "manifest")
    document = _json_blob(content, target, "manifest")
    if media_type in INDEX_TYPES or media_type == OCI_INDEX or "manifests" in document:
        try:
            descriptor = select_manifest(document, platform)
        except LookupError as e:
            raise ArchiveError(f"index {target}: {e}") from None
        document = _json_blob(content, _check_blob(content, descriptor, "manifest"), "manifest")
    if not isinstance(document.get("config"), dict) or not isinstance(document.get("layers"), list):
        return None
    config_digest = _check_blob(content, document["config"], "image config")
    config = _json_blob(content, config_digest, "image config")
    diff_ids = _diff_ids(config, config_digest)
    for layer in document["layers"]:
        _check_blob(content, layer if isinstance(layer, dict) else {}, "layer")
    if len(diff_ids) != len(document["layers"]):
        raise ArchiveError(f"manifest {descriptor['digest']}: {len(document['layers'])} layers, but its config "
                           f"lists {len(diff_ids)} diff IDs")
    return _Image(target, descriptor["digest"], config_digest)


def _entry_config(entry: dict, index: ArchiveIndex, content: ContentStore) -> tuple[str, bytes]:
    config_path = entry.get("Config")
    if not isinstance(config_path, str) or not isinstance(entry.get("Layers"), list):
        raise ArchiveError("manifest.json entry without Config or Layers")
    config_bytes = index.read(config_path, "image config")
    return index.put(config_bytes), config_bytes


def _from_entry(entry: dict, config_digest: str, config_bytes: bytes, index: ArchiveIndex,
                content: ContentStore) -> _Image:
    """A manifest.json entry, with an OCI manifest written for it (the one Docker would write:
    the same image gets the same manifest digest)."""
    try:
        config = json.loads(config_bytes)
    except ValueError as e:
        raise ArchiveError(f"image config {entry['Config']!r} is not valid JSON: {e}") from None
    diff_ids = _diff_ids(config if isinstance(config, dict) else {}, config_digest)
    layer_paths = entry["Layers"]
    if len(diff_ids) != len(layer_paths):
        raise ArchiveError(f"manifest.json lists {len(layer_paths)} layers for {entry['Config']}, its config "
                           f"{len(diff_ids)} diff IDs")
    layers = []
    for path, diff_id in zip(layer_paths, diff_ids, strict=True):
        if not isinstance(path, str):
            raise ArchiveError(f"manifest.json: layer path {path!r} is not a string")
        digest, size = index.stored(path, "layer")
        layers.append(layer_descriptor(digest, size, _layer_type(content, digest, diff_id, path)))
    manifest = oci_manifest(config_digest, len(config_bytes), layers)
    manifest_digest = index.put(manifest)
    return _Image(manifest_digest, manifest_digest, config_digest)


def _layer_type(content: ContentStore, digest: str, diff_id, path: str) -> str:
    """A plain layer must be its diff ID; a compressed one is checked when it is unpacked."""
    if digest == diff_id:
        return OCI_LAYER
    with content.open(digest) as f:
        kind = compression_of(f.read(6))
    if kind == "gzip":
        return OCI_LAYER_GZIP
    if kind == "zstd":
        return OCI_LAYER_ZSTD
    raise ArchiveError(f"layer {path!r} has digest {digest}, but the image config says its diff ID is {diff_id}")


def _name(found: list[_Image], images: ImageStore) -> list[Loaded]:
    """The last step: point the names at the images (and keep unnamed ones as dangling)."""
    report = []
    for image in found:
        if not image.names:
            if not any(r.config == image.config for r in images.list()):
                images.put(ImageRecord(dangling_name(image.config), image.target, image.manifest, image.config))
            report.append(Loaded(image.config, None))
            continue
        for name in image.names:
            try:
                previous = images.get(name)
            except ImageNotFound:
                previous = None
            # the old image keeps its content, without a name (Docker: "renaming ... to empty string")
            images.put(ImageRecord(name, image.target, image.manifest, image.config))
            replaced = previous.config if previous and previous.config != image.config else None
            report.append(Loaded(image.config, name, replaced))
    return report
