"""`orlop explain`: a container's isolation made visible, as the Docker articles show it by
hand (`echo $$` is 1 inside, `ps` on the host shows an ordinary pid, /proc/<pid>/ns differs
from the host's, the runtime's state.json, kill -9 of the host pid stops it), and an image's
layers. The daemon computes the answer (GET /containers/{id}/explain, GET
/images/{name}/explain) from the kernel's own files; the CLI only renders it.

Each part is a small reader with one job: process (pids, tree, shim, runtime state),
namespaces, rootfs (layers, mounts, masked paths), cgroup, security (caps, seccomp,
no_new_privs, user namespace maps), network, image (layers and what each adds). The JSON
keys are documented in docs/explain.md and kept stable (`version` changes if they must).
"""

from __future__ import annotations

import contextlib
import os

from orlop.errors import OrlopError
from orlop.fsutil import tree_size

VERSION = 1


def _image_part(service, record: dict) -> tuple[dict, list[dict]]:
    from orlop.containers.explain.image import record_layers

    found = {"name": record["Config"].get("Image"), "id": record["Image"]}
    try:
        _, layers = record_layers(service.images.resolve(record["Image"]), service.images.content)
    except (OrlopError, OSError, ValueError):
        layers = []
    return found, layers


def _status(state: dict) -> str:
    return state.get("Status") or ("running" if state.get("Running") else "exited")


def _running_parts(service, record: dict, host_pid: int, image_layers: list[dict], keys_by_dir: dict) -> dict:
    from orlop.containers.explain import cgroup, namespaces, network, process, rootfs, security
    from orlop.linux.cgroups import read_hierarchies

    cid = record["Id"]
    state_dir = service.paths.state_dir(cid)
    runtime = service.runtimes.get(record["HostConfig"].get("Runtime"), record["HostConfig"].get("Runtime"))
    shim = process.shim(state_dir)
    ns = namespaces.view(host_pid)
    new = {row["type"]: row["new"] for row in ns["list"]}
    bundle = rootfs.bundle_config(state_dir)
    return {
        "process": {**process.pids(host_pid), "shim": shim,
                    "runtime_state": process.runtime_state(service.paths.runtime_root(runtime), cid),
                    "tree": process.tree(host_pid, shim["pid"] if shim["alive"] else None)},
        "namespaces": ns,
        "rootfs": rootfs.view(record, state_dir, os.path.join(service.store.dir(cid), "rootfs"), host_pid,
                              keys_by_dir, image_layers),
        "cgroup": cgroup.view(host_pid, read_hierarchies()),
        **security.view(host_pid, record["HostConfig"], bundle, service.seccomp_profile is not None,
                        new.get("user")),
        "network": network.view(record, host_pid, new.get("net")),
    }


def _left_behind(service, record: dict) -> dict:
    """What a stopped container still has: its writable layer, its log, and (normally
    nothing of) the runtime's state."""
    from orlop.containers.explain import process

    upper = (record.get("GraphDriver") or {}).get("Data", {}).get("UpperDir")
    log_path = record.get("LogPath") or None
    runtime = service.runtimes.get(record["HostConfig"].get("Runtime"), record["HostConfig"].get("Runtime"))
    size = None
    if upper and os.path.isdir(upper):
        with contextlib.suppress(OSError):
            size = tree_size(upper)
    return {"upper_dir": upper if upper and os.path.isdir(upper) else None, "upper_size": size,
            "log_path": log_path if log_path and os.path.exists(log_path) else None,
            "log_size": os.path.getsize(log_path) if log_path and os.path.exists(log_path) else None,
            "runtime_state": process.runtime_state(service.paths.runtime_root(runtime), record["Id"])["path"],
            "shim_state_dir": service.paths.state_dir(record["Id"])
            if os.path.isdir(service.paths.state_dir(record["Id"])) else None}


def explain_container(service, ref: str) -> dict:
    """The explanation of container `ref` (name, id or prefix), as the API returns it."""
    from orlop.containers.explain import rootfs

    record = service.get(ref)
    state = record["State"]
    image, image_layers = _image_part(service, record)
    keys_by_dir = service.images.snapshotter.keys_by_dir()
    answer: dict = {
        "kind": "container", "version": VERSION, "id": record["Id"], "name": record["Name"].lstrip("/"),
        "image": image, "status": _status(state), "runtime": record["HostConfig"].get("Runtime"),
        "created": record.get("Created"), "started_at": state.get("StartedAt"),
        "process": None, "namespaces": None, "rootfs": None, "cgroup": None, "capabilities": None, "seccomp": None,
        "no_new_privs": None, "user_namespace": None, "network": None, "exit": None, "left": None,
    }
    host_pid = state.get("Pid") if state.get("Running") else 0
    if host_pid:
        try:
            answer.update(_running_parts(service, record, host_pid, image_layers, keys_by_dir))
        except OSError:
            if os.path.exists(f"/proc/{host_pid}"):
                raise
            host_pid = 0  # it exited while we read: explain what is left instead
            answer["status"] = "exited"
    if not host_pid:
        answer["rootfs"] = rootfs.view(record, service.paths.state_dir(record["Id"]),
                                       os.path.join(service.store.dir(record["Id"]), "rootfs"), None,
                                       keys_by_dir, image_layers)
        answer["exit"] = {"exit_code": state.get("ExitCode"), "oom_killed": bool(state.get("OOMKilled")),
                          "finished_at": state.get("FinishedAt"), "error": state.get("Error") or None,
                          "restart_count": record.get("RestartCount", 0)}
        answer["left"] = _left_behind(service, record)
    return answer


def explain_image(images, name: str) -> dict:
    from orlop.containers.explain.image import view

    return view(images, name)
