"""An image explained: its layers bottom first (digest, diff ID, chain ID, size, the history
step that made it) and what each one adds, from its snapshot or its tar."""

from __future__ import annotations

import json

from orlop.containers.explain import layer_changes
from orlop.images.content import ContentStore
from orlop.images.service import ImageService
from orlop.images.store import ImageRecord
from orlop.snapshots import COMMITTED, SnapshotNotFound, chain_ids


def layer_table(manifest: dict, config: dict) -> list[dict]:
    """The manifest's layers with the config's diff IDs, their chain IDs and the history step
    of each (steps marked empty_layer made none)."""
    diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
    chains = chain_ids(diff_ids)
    steps = iter([h for h in config.get("history") or [] if not h.get("empty_layer")])
    out = []
    for index, (layer, diff_id, chain) in enumerate(zip(manifest.get("layers") or [], diff_ids, chains,
                                                        strict=False)):
        step = next(steps, {}) or {}
        out.append({"index": index, "digest": layer.get("digest"), "media_type": layer.get("mediaType"),
                    "size": layer.get("size"), "diff_id": diff_id, "chain_id": chain,
                    "created": step.get("created"), "created_by": step.get("created_by"),
                    "comment": step.get("comment")})
    return out


def record_layers(record: ImageRecord, content: ContentStore) -> tuple[dict, list[dict]]:
    config = json.loads(content.read(record.config))
    return config, layer_table(json.loads(content.read(record.manifest)), config)


def _entries(layer: dict, snapshot_dirs: dict[str, str], content: ContentStore) -> tuple[str, list]:
    directory = snapshot_dirs.get(layer["chain_id"])
    if directory:
        return "snapshot", list(layer_changes.entries_from_dir(directory))
    with content.open(layer["digest"]) as blob:
        return "tar", list(layer_changes.entries_from_tar(blob))


def with_changes(layers: list[dict], images: ImageService) -> list[dict]:
    """`layers` with {changes: {added, changed, deleted, source}} each (None if unreadable)."""
    committed = {}
    for directory, key in images.snapshotter.keys_by_dir().items():
        try:
            if images.snapshotter.stat(key).kind == COMMITTED:
                committed[key] = directory
        except SnapshotNotFound:
            continue
    read: list[tuple[str, list] | None] = []
    for layer in layers:
        try:
            read.append(_entries(layer, committed, images.content))
        except Exception:  # noqa: BLE001 - a blob missing or in a format tarfile cannot read
            read.append(None)
    counts = layer_changes.count_changes([entries for _, entries in filter(None, read)])
    out = []
    it = iter(counts)
    for layer, found in zip(layers, read, strict=True):
        changes = None
        if found is not None:
            changes = {**next(it), "source": found[0]}
        out.append({**layer, "unpacked": layer["chain_id"] in committed, "changes": changes})
    return out


def view(images: ImageService, name: str) -> dict:
    record = images.resolve(name)
    config, layers = record_layers(record, images.content)
    names = sorted(r.name for r in images.images.list() if r.config == record.config and not r.dangling)
    image_config = config.get("config") or {}
    return {
        "kind": "image", "version": 1, "id": record.config, "names": names,
        "created": config.get("created"), "os": config.get("os"), "architecture": config.get("architecture"),
        "size": sum(layer.get("size") or 0 for layer in layers),
        "config": {"entrypoint": image_config.get("Entrypoint"), "cmd": image_config.get("Cmd"),
                   "env": image_config.get("Env"), "working_dir": image_config.get("WorkingDir") or None,
                   "user": image_config.get("User") or None,
                   "exposed_ports": sorted(image_config.get("ExposedPorts") or {})},
        "layers": with_changes(layers, images),
        "empty_steps": [h.get("created_by") for h in config.get("history") or [] if h.get("empty_layer")],
    }
