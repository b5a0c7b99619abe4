"""Image management on the stores: list, inspect, history, tag, remove, garbage collection.

Garbage collection marks every blob reachable from a name (index -> manifests ->
config and layers) and every snapshot on an unpacked image's chain or under a
container's snapshot, then sweeps the rest. Blobs younger than a grace period
are kept: a pull commits its blobs before it records the name (containerd
protects that window with leases; a grace period is the simple form of it).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable

from orlop.images.content import ContentError, ContentStore
from orlop.images.pull import INDEX_TYPES
from orlop.images.reference import Reference
from orlop.images.store import ImageNotFound, ImageRecord, ImageStore


class ImageInUse(RuntimeError):
    pass


def _manifest(record: ImageRecord, content: ContentStore) -> dict:
    return json.loads(content.read(record.manifest))


def _config(record: ImageRecord, content: ContentStore) -> dict:
    return json.loads(content.read(record.config))


def image_size(record: ImageRecord, content: ContentStore) -> int:
    return sum(layer.get("size", 0) for layer in _manifest(record, content)["layers"])


def list_images(images: ImageStore, content: ContentStore) -> list[dict]:
    """One entry per image ID (config digest), with every name pointing at it."""
    by_id: dict[str, dict] = {}
    for record in images.list():
        entry = by_id.setdefault(record.config, {
            "Id": record.config, "RepoTags": [], "RepoDigests": [],
            "Created": _config(record, content).get("created", ""), "Size": image_size(record, content)})
        if record.dangling:      # an image without a name: <none>
            continue
        if "@" in record.name:
            entry["RepoDigests"].append(record.name)
        else:
            entry["RepoTags"].append(record.name)
            if record.distributed:  # a loaded, imported or built image has no registry digest
                entry["RepoDigests"].append(f"{record.name.rsplit(':', 1)[0]}@{record.target}")
    return list(by_id.values())


def inspect(record: ImageRecord, images: ImageStore, content: ContentStore) -> dict:
    """The image in the shape of `docker image inspect`."""
    config = _config(record, content)
    same = [r for r in images.list() if r.config == record.config and not r.dangling]
    return {
        "Id": record.config,
        "RepoTags": [r.name for r in same if "@" not in r.name],
        "RepoDigests": sorted({f"{r.name.split('@')[0].rsplit(':', 1)[0]}@{r.target}" for r in same
                               if r.distributed or "@" in r.name}),
        "Created": config.get("created", ""),
        "Author": config.get("author", ""),
        "Architecture": config.get("architecture", ""),
        "Variant": config.get("variant", ""),
        "Os": config.get("os", ""),
        "Config": config.get("config") or {},
        "Size": image_size(record, content),
        "RootFS": {"Type": "layers", "Layers": config.get("rootfs", {}).get("diff_ids", [])},
    }


def history(record: ImageRecord, content: ContentStore) -> list[dict]:
    """Newest step first, as `docker history`; steps that made a layer carry its size."""
    config = _config(record, content)
    layers = iter(_manifest(record, content)["layers"])
    rows = []
    for step in config.get("history") or []:
        empty = step.get("empty_layer", False)
        layer = None if empty else next(layers, None)
        rows.append({"Created": step.get("created", ""), "CreatedBy": step.get("created_by", ""),
                     "Comment": step.get("comment", ""), "Size": layer.get("size", 0) if layer else 0})
    return rows[::-1]


def tag(images: ImageStore, source: str, target: Reference) -> ImageRecord:
    record = images.get(source)
    tagged = ImageRecord(str(target), record.target, record.manifest, record.config)
    images.put(tagged)  # a dangling image named now is no longer dangling
    return tagged


def remove(images: ImageStore, name: str, *, used_by: Callable[[str], list[str]] | None = None,
           force: bool = False) -> list[str]:
    """Untag `name`; refuses while a container uses its image unless forced. Returns the
    events to report ("Untagged: ..."; "Deleted: <id>" once no name is left for the image)."""
    record = images.get(name)
    users = used_by(record.config) if used_by else []
    if users and not force:
        raise ImageInUse(f"conflict: unable to remove repository reference \"{name}\" (must force) - "
                         f"container {users[0][:12]} is using its referenced image {record.config[7:19]}")
    images.remove(name)
    events = [] if record.dangling else [f"Untagged: {name}"]
    if not any(r.config == record.config for r in images.list()):
        events.append(f"Deleted: {record.config}")
    return events


def reachable_blobs(images: ImageStore, content: ContentStore) -> set[str]:
    keep: set[str] = set()
    for record in images.list():
        for digest in {record.target, record.manifest}:
            keep.add(digest)
            try:
                document = json.loads(content.read(digest))
            except ContentError:
                continue
            if document.get("mediaType") in INDEX_TYPES or "manifests" in document:
                keep.update(m["digest"] for m in document.get("manifests", []) if content.exists(m["digest"]))
                continue
            keep.add(document["config"]["digest"])
            keep.update(layer["digest"] for layer in document.get("layers", []))
    return keep


def garbage_collect(images: ImageStore, content: ContentStore, *, grace_seconds: float = 600,
                    snapshotter=None) -> dict:
    """Remove blobs (and, given a snapshotter, committed snapshots) that nothing reaches."""
    keep = reachable_blobs(images, content)
    now = time.time()
    removed_blobs, reclaimed = [], 0
    for digest in list(content.walk()):
        if digest in keep:
            continue
        path = content.path(digest)
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            continue
        if now - stat.st_mtime < grace_seconds:
            continue
        content.delete(digest)
        removed_blobs.append(digest)
        reclaimed += stat.st_size
    removed_snapshots = _collect_snapshots(images, content, snapshotter) if snapshotter else []
    content.prune_ingests(older_than=grace_seconds)
    return {"blobs": removed_blobs, "snapshots": removed_snapshots, "reclaimed": reclaimed}


def references(record: ImageRecord, content: ContentStore) -> tuple[set[str], set[str]]:
    """The blobs (index, manifest, config, layers) and snapshots (chain IDs) an image uses."""
    from orlop.snapshots import chain_ids

    blobs = {record.target, record.manifest, record.config}
    try:
        blobs.update(layer["digest"] for layer in _manifest(record, content).get("layers", []))
        chains = set(chain_ids(_config(record, content)["rootfs"]["diff_ids"]))
    except (ContentError, KeyError, ValueError):
        chains = set()
    return blobs, chains


def release(images: ImageStore, content: ContentStore, snapshotter, blobs: set[str], chains: set[str]) -> int:
    """After images or build cache entries are removed: delete those of their blobs and
    snapshots that nothing reaches any more (only those: what a pull or a build is writing
    meanwhile is never touched); the bytes freed."""
    keep = reachable_blobs(images, content)
    freed = 0
    for digest in blobs - keep:
        try:
            freed += os.stat(content.path(digest)).st_size
        except (FileNotFoundError, ContentError):
            continue
        content.delete(digest)
    if snapshotter is not None and chains:
        usage = {}
        for name in chains:
            try:
                usage[name] = snapshotter.usage(name).size
            except Exception:
                continue
        freed += sum(usage[name] for name in _collect_snapshots(images, content, snapshotter, chains)
                     if name in usage)
    images.keep_room()  # given up by a removal on a full disk: kept again once there is space
    return freed


def _collect_snapshots(images: ImageStore, content: ContentStore, snapshotter,
                       only: set[str] | None = None) -> list[str]:
    from orlop.snapshots import COMMITTED, chain_ids

    wanted: set[str] = set()
    for record in images.list():
        try:
            wanted.update(chain_ids(_config(record, content)["rootfs"]["diff_ids"]))
        except (ContentError, KeyError):
            continue
    infos = {info.name: info for info in snapshotter.walk()}
    for info in infos.values():  # containers' snapshots keep their whole chain
        if info.kind != COMMITTED:
            parent = info.parent
            while parent:
                wanted.add(parent)
                parent = infos[parent].parent if parent in infos else None
    removed = []
    while True:  # leaves first: a snapshot with children cannot go
        parents = {info.parent for info in infos.values() if info.parent}
        leaves = [n for n, i in infos.items() if i.kind == COMMITTED and n not in wanted and n not in parents
                  and (only is None or n in only)]
        if not leaves:
            return removed
        for name in leaves:
            snapshotter.remove(name)
            removed.append(name)
            del infos[name]


def get_record(images: ImageStore, name: str) -> ImageRecord:
    """By name, or by (a prefix of) image ID as the docker CLI allows."""
    try:
        return images.get(name)
    except ImageNotFound:
        wanted = name if name.startswith("sha256:") else "sha256:" + name
        matches = {r.config: r for r in images.list() if r.config.startswith(wanted)}
        if len(matches) == 1:
            return next(iter(matches.values()))
        raise
