"""The container's root filesystem: the overlay's lower directories traced back to the
image's layers (snapshot key = chain ID -> diff ID -> layer digest), its upper dir, the
mounts that differ from the host's (its mountinfo against orlopd's), and the masked and
read-only paths of its OCI config with whether the kernel shows each one applied."""

from __future__ import annotations

import json
import os

from orlop.linux import procfs


def bundle_config(state_dir: str) -> dict | None:
    try:
        with open(os.path.join(state_dir, "config.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def layers(lower_dirs: list[str], keys_by_dir: dict[str, str], image_layers: list[dict]) -> list[dict]:
    """Each lower dir (top first, as overlayfs lists them) with the image layer it holds."""
    by_chain = {layer["chain_id"]: layer for layer in image_layers}
    out = []
    for position, directory in enumerate(lower_dirs):
        key = keys_by_dir.get(directory)
        layer = by_chain.get(key or "")
        out.append({"lower_dir": directory, "position": position, "chain_id": key,
                    "diff_id": layer["diff_id"] if layer else None, "digest": layer["digest"] if layer else None,
                    "index": layer["index"] if layer else None})
    return out


def _same(a: dict, b: dict) -> bool:
    return (a["device"], a["root"], a["fstype"]) == (b["device"], b["root"], b["fstype"])


def differing_mounts(container: list[dict], host: list[dict]) -> list[dict]:
    """The container's mounts, each marked against what the host has at the same path:
    "same" (same filesystem and root), "different" or "container-only"."""
    host_at: dict[str, dict] = {}
    for mount in host:
        host_at[mount["mount_point"]] = mount  # the last one mounted there is the one seen
    out = []
    for mount in container:
        other = host_at.get(mount["mount_point"])
        host = "container-only" if other is None else "same" if _same(mount, other) else "different"
        out.append({"mount_point": mount["mount_point"], "fstype": mount["fstype"], "source": mount["source"],
                    "root": mount["root"], "options": mount["options"],
                    "readonly": "ro" in mount["options"].split(","), "host": host,
                    "host_fstype": other["fstype"] if other else None})
    return out


def _covered(path: str, mounts: list[dict]) -> dict | None:
    found = None
    for mount in mounts:
        if mount["mount_point"] == path:
            found = mount
    return found


def special_paths(paths: list[str], mounts: list[dict] | None, want_readonly: bool,
                  exists=None) -> list[dict]:
    """Masked or read-only paths, each with `applied`: a mount at that path (read-only,
    when that is the point) in the container's mount table, and `exists`: whether there is
    such a path in the container at all (runtimes skip those that are not); both None when
    it is not running."""
    out = []
    for path in paths:
        applied = present = None
        if mounts is not None:
            mount = _covered(path, mounts)
            applied = mount is not None and (not want_readonly or "ro" in mount["options"].split(","))
            present = exists(path) if exists else None
        out.append({"path": path, "applied": applied, "exists": present})
    return out


def view(record: dict, state_dir: str, rootfs_path: str, host_pid: int | None, keys_by_dir: dict[str, str],
         image_layers: list[dict]) -> dict:
    graph = (record.get("GraphDriver") or {}).get("Data") or {}
    lower = [d for d in (graph.get("LowerDir") or "").split(":") if d]
    upper, work = graph.get("UpperDir"), graph.get("WorkDir")
    container_mounts = host_mounts = None
    root_mount = None
    if host_pid:
        try:
            container_mounts = procfs.read_mountinfo(host_pid)
            host_mounts = procfs.read_mountinfo("self")
        except OSError:
            container_mounts = None
    if container_mounts:
        root_mount = next((m for m in container_mounts if m["mount_point"] == "/"), None)
        if root_mount and root_mount["fstype"] == "overlay":  # the kernel's word over the record's
            dirs = procfs.overlay_dirs(root_mount["super_options"])
            lower = dirs.get("lowerdir", lower)
            upper = (dirs.get("upperdir") or [upper])[0]
            work = (dirs.get("workdir") or [work])[0]
    config = bundle_config(state_dir) or {}
    linux = config.get("linux") or {}
    readonly = bool((config.get("root") or {}).get("readonly")) if config else bool(
        record["HostConfig"].get("ReadonlyRootfs"))
    if root_mount is not None:
        readonly = "ro" in root_mount["options"].split(",")
    def exists(path: str) -> bool:  # seen through the container's own root
        return os.path.lexists(f"/proc/{host_pid}/root{path}")

    mounts = differing_mounts(container_mounts, host_mounts) if container_mounts and host_mounts else None
    return {
        "driver": "overlay" if lower else (record.get("GraphDriver") or {}).get("Name"),
        "path": rootfs_path,
        "readonly": readonly,
        "upper_dir": upper, "work_dir": work,
        "layers": layers(lower, keys_by_dir, image_layers),
        "mounts": [m for m in mounts if m["host"] != "same"] if mounts is not None else None,
        "shared_mounts": sum(1 for m in mounts if m["host"] == "same") if mounts is not None else None,
        "masked_paths": special_paths(linux.get("maskedPaths") or [], container_mounts, False, exists),
        "readonly_paths": special_paths(linux.get("readonlyPaths") or [], container_mounts, True, exists),
    }
