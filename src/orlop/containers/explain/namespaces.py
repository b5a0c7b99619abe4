"""Each namespace kind of the container next to the host's: the table the Docker articles
build with `diff <(ls -Al /proc/1/ns) <(ls -Al /proc/<pid>/ns)`.

"The host" is orlopd's own namespaces (/proc/self/ns of the daemon): those a container
shares when it is run with --network host, --pid host… PID 1's are shown beside them when
they can be read (inside some VMs and sandboxes they cannot, which the answer says)."""

from __future__ import annotations

import os

from orlop.linux import procfs


def reference() -> dict:
    """What the container's namespaces are compared with."""
    pid1 = procfs.ns_inodes(1)
    readable = any(v is not None for v in pid1.values())
    note = "host = orlopd's own namespaces (/proc/self/ns)"
    if not readable:
        note += "; PID 1's (/proc/1/ns) cannot be read here"
    return {"source": "orlopd", "pid": os.getpid(), "pid1_readable": readable, "note": note,
            "pid1": pid1 if readable else None}


def compare(container: dict[str, int | None], host: dict[str, int | None]) -> list[dict]:
    """[{type, container, host, new}] in /proc/<pid>/ns order; `new` is None when either
    side is unknown (a kind this kernel lacks)."""
    rows = []
    for kind in procfs.NAMESPACE_KINDS:
        theirs, ours = container.get(kind), host.get(kind)
        rows.append({"type": kind, "container": theirs, "host": ours,
                     "new": None if theirs is None or ours is None else theirs != ours})
    return rows


def view(host_pid: int) -> dict:
    ref = reference()
    return {"reference": ref, "path": f"/proc/{host_pid}/ns",
            "list": compare(procfs.ns_inodes(host_pid), procfs.ns_inodes("self"))}
