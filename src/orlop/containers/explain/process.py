"""The container's process from both sides: its pid on the host and inside (NSpid), the
tree of processes under its shim (each with both pids), the shim itself, and the OCI
runtime's state file (runc's state.json: init_process_pid, namespace_paths)."""

from __future__ import annotations

import contextlib
import json
import os

from orlop.linux import procfs
from orlop.shim import protocol


def _read_pid(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def shim(state_dir: str) -> dict:
    """The shim that owns the container: its pid (from shim.pid, checked alive) and socket."""
    pid = _read_pid(os.path.join(state_dir, protocol.PID_FILE))
    alive = pid is not None and os.path.exists(f"/proc/{pid}")
    socket = os.path.join(state_dir, protocol.SOCKET)
    return {"pid": pid, "alive": alive, "socket": socket if os.path.exists(socket) else None,
            "state_dir": state_dir, "command": procfs.command_line(pid) if alive else None}


def runtime_state(runtime_root: str, cid: str) -> dict:
    """Where the runtime keeps the container's state and what it says there (runc's and
    orlop-runtime's state.json; crun keeps a `status` file of its own)."""
    directory = os.path.join(runtime_root, cid)
    for name in ("state.json", "status"):
        path = os.path.join(directory, name)
        if os.path.exists(path):
            break
    else:
        return {"path": None, "directory": directory}
    found: dict = {"path": path, "directory": directory}
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        found["error"] = str(e)
        return found
    if isinstance(data, dict):
        for key in ("init_process_pid", "init_process_start", "created", "bundle", "rootfs"):
            if key in data:
                found[key] = data[key]
        for key in ("namespace_paths", "cgroup_paths"):
            if isinstance(data.get(key), dict):
                found[key] = data[key]
        if "pid" in data and "init_process_pid" not in found:  # crun's status
            found["init_process_pid"] = data["pid"]
    return found


def pids(host_pid: int) -> dict:
    """{host_pid, pid (inside), nspid}: NSpid's last field is the pid in the innermost namespace."""
    status = procfs.read_status(host_pid)
    chain = procfs.nspid(status) or [host_pid]
    return {"host_pid": host_pid, "pid": chain[-1], "nspid": chain}


def tree(host_pid: int, shim_pid: int | None) -> list[dict]:
    """Every process under the shim (or under the init, without one), depth-first, with its
    host pid, its pid in the container's pid namespace (None outside it) and its command."""
    table = procfs.parents()
    root = shim_pid if shim_pid in table else host_pid
    container_ns = procfs.ns_inode(host_pid, "pid")
    rows = []
    for pid, depth in procfs.descendants(root, table):
        inside = None
        if procfs.ns_inode(pid, "pid") == container_ns:
            with contextlib.suppress(OSError):
                inside = (procfs.nspid(procfs.read_status(pid)) or [pid])[-1]
        role = "shim" if pid == shim_pid else "init" if pid == host_pid else "process"
        rows.append({"host_pid": pid, "pid": inside, "ppid": table.get(pid), "depth": depth, "role": role,
                     "command": procfs.command_line(pid)})
    return rows
