"""The text formats of /proc, parsed (pure functions, unit-tested on samples), and the thin
readers that feed them: a process's status, namespace links, mount table, id maps and
the parent of every process. Nothing here changes anything.
"""

from __future__ import annotations

import os

# Every namespace kind /proc/<pid>/ns shows (time* from Linux 5.6), in `ls` order.
NAMESPACE_KINDS = ("cgroup", "ipc", "mnt", "net", "pid", "pid_for_children", "time", "time_for_children",
                   "user", "uts")


# -- /proc/<pid>/status --------------------------------------------------------------------------

def parse_status(text: str) -> dict[str, str]:
    """`Key:\tvalue` lines -> {key: value} (values stripped, kept as text)."""
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key] = value.strip()
    return fields


def read_status(pid: int | str) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as f:
        return parse_status(f.read())


def nspid(status: dict[str, str]) -> list[int]:
    """NSpid: the pid in each pid namespace the process is in, outermost (the reader's) first."""
    return [int(p) for p in status.get("NSpid", "").split()]


# -- /proc/<pid>/ns/* ----------------------------------------------------------------------------

def parse_ns_link(target: str) -> int:
    """`net:[4026531833]` -> 4026531833."""
    kind, sep, rest = target.partition(":[")
    if not sep or not rest.endswith("]"):
        raise ValueError(f"not a namespace link: {target!r}")
    return int(rest[:-1])


def ns_inode(pid: int | str, kind: str) -> int | None:
    """The inode of the process's namespace of `kind`; None when it cannot be read (no such
    process, a kernel without that kind, or not allowed, as for PID 1 inside some VMs)."""
    try:
        return parse_ns_link(os.readlink(f"/proc/{pid}/ns/{kind}"))
    except (OSError, ValueError):
        return None


def ns_inodes(pid: int | str) -> dict[str, int | None]:
    return {kind: ns_inode(pid, kind) for kind in NAMESPACE_KINDS}


# -- /proc/<pid>/mountinfo -----------------------------------------------------------------------

def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as \\040, \\011, \\012, \\134."""
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and len(field[i + 1:i + 4]) == 3 and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> list[dict]:
    """proc(5)'s mountinfo lines -> [{id, parent, device, root, mount_point, options,
    fstype, source, super_options}] in the file's order."""
    mounts = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields = left.split()
        fstype, source, *rest = right.split(" ", 2) + [""] * 2
        mounts.append({
            "id": int(fields[0]), "parent": int(fields[1]), "device": fields[2], "root": _unescape(fields[3]),
            "mount_point": _unescape(fields[4]), "options": fields[5], "fstype": fstype,
            "source": _unescape(source), "super_options": rest[0].strip(),
        })
    return mounts


def read_mountinfo(pid: int | str) -> list[dict]:
    with open(f"/proc/{pid}/mountinfo") as f:
        return parse_mountinfo(f.read())


def overlay_dirs(super_options: str) -> dict[str, list[str]]:
    """An overlay mount's lowerdir (top first), upperdir and workdir from its options."""
    dirs: dict[str, list[str]] = {}
    for option in super_options.split(","):
        key, _, value = option.partition("=")
        if key in ("lowerdir", "upperdir", "workdir"):
            dirs[key] = value.split(":") if key == "lowerdir" else [value]
    return dirs


# -- /proc/<pid>/uid_map, gid_map ----------------------------------------------------------------

def parse_id_map(text: str) -> list[dict[str, int]]:
    """`inside outside count` lines -> [{inside, outside, count}]."""
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3:
            out.append({"inside": int(parts[0]), "outside": int(parts[1]), "count": int(parts[2])})
    return out


def read_id_map(pid: int | str, which: str) -> list[dict[str, int]]:
    with open(f"/proc/{pid}/{which}") as f:
        return parse_id_map(f.read())


IDENTITY_MAP = [{"inside": 0, "outside": 0, "count": 4294967295}]


# -- processes -----------------------------------------------------------------------------------

def parse_stat_ppid(raw: bytes) -> int:
    """The parent pid from a /proc/<pid>/stat line (the name in parentheses may hold anything)."""
    return int(raw[raw.rindex(b")") + 2:].split()[1])


def parents() -> dict[int, int]:
    """{pid: parent pid} of every process visible now."""
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    table[int(entry)] = parse_stat_ppid(f.read())
            except (OSError, ValueError, IndexError):
                continue  # gone meanwhile
    return table


def descendants(root: int, table: dict[int, int]) -> list[tuple[int, int]]:
    """(pid, depth) of `root` and everything below it, depth-first, children by pid."""
    children: dict[int, list[int]] = {}
    for pid, ppid in table.items():
        children.setdefault(ppid, []).append(pid)
    out: list[tuple[int, int]] = []
    stack = [(root, 0)]
    while stack:
        pid, depth = stack.pop()
        out.append((pid, depth))
        stack.extend((child, depth + 1) for child in sorted(children.get(pid, ()), reverse=True))
    return out


def command_line(pid: int) -> str:
    """The process's argv joined by spaces; its [name] when it has none (a kernel thread, a zombie)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read()
        if raw:
            return raw.rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace")
        with open(f"/proc/{pid}/comm") as f:
            return f"[{f.read().strip()}]"
    except OSError:
        return "?"

