"""`orlop explain` as text: the daemon's JSON (docs/explain.md) laid out in sections and
aligned tables, readable at a glance. Colour (bold titles, "new" and "shared" marked) only
when asked for: the command asks when stdout is a terminal and NO_COLOR is unset. Pure:
JSON in, text out."""

from __future__ import annotations

from orlop.cli.units import bytes_size, human_size

BOLD, DIM, GREEN, YELLOW, RED, RESET = "\033[1m", "\033[2m", "\033[32m", "\033[33m", "\033[31m", "\033[0m"


class Painter:
    def __init__(self, colour: bool) -> None:
        self.colour = colour

    def __call__(self, text: str, code: str) -> str:
        return f"{code}{text}{RESET}" if self.colour and text else text


def table(rows: list[list[str]], paint: Painter | None = None, indent: str = "  ",
          styles: list[list[str | None]] | None = None, gap: int = 2) -> list[str]:
    """Columns aligned on the plain text (colour codes are added after padding); the last
    column is not padded."""
    if not rows:
        return []
    widths = [max(len(row[c]) if c < len(row) else 0 for row in rows) for c in range(max(map(len, rows)))]
    out = []
    for r, row in enumerate(rows):
        cells = []
        for c, cell in enumerate(row):
            padded = cell if c == len(row) - 1 else cell.ljust(widths[c] + gap)
            style = styles[r][c] if styles and r < len(styles) and c < len(styles[r]) else None
            if style and paint:
                padded = paint(cell, style) + padded[len(cell):]
            cells.append(padded)
        out.append((indent + "".join(cells)).rstrip())
    return out


def _short(digest: str | None, n: int = 12) -> str:
    if not digest:
        return "-"
    return digest.split(":", 1)[-1][:n]


def _size(value: int | None) -> str:
    return "-" if value is None else human_size(value)


def _mem(value: int | None) -> str:
    return "-" if value is None else bytes_size(value)


def _limit(value: int | None, unit=_mem) -> str:
    return "unlimited" if value is None else unit(value)


def wrap(words: list[str], width: int = 88) -> list[str]:
    """Words joined by spaces into lines of at most `width` characters (a longer word alone)."""
    lines: list[str] = []
    for word in words:
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines or [""]


def _pairs(pairs: list[tuple[str, str | list[str]]], indent: str = "  ") -> list[str]:
    """key/value rows; a list value is a wrapped value (continued under itself)."""
    rows = []
    for key, value in pairs:
        lines = value if isinstance(value, list) else [value]
        rows.append([key, lines[0]])
        rows.extend(["", line] for line in lines[1:])
    return table(rows, indent=indent)


def _title(paint: Painter, text: str, note: str = "") -> list[str]:
    return ["", paint(text, BOLD) + (f"   {note}" if note else "")]


# -- container --------------------------------------------------------------------------------------

def _process(data: dict, paint: Painter) -> list[str]:
    p = data["process"]
    shim = p.get("shim") or {}
    state = p.get("runtime_state") or {}
    pairs = [("PID inside", str(p["pid"])),
             ("PID on host", f"{p['host_pid']}   (NSpid: {' '.join(map(str, p['nspid']))})"),
             ("shim", f"{shim.get('pid') or '-'}   {shim.get('socket') or '(no socket)'}"),
             ("runtime state", state.get("path") or "(none)")]
    if state.get("init_process_pid") is not None:
        pairs.append(("  init_process_pid", str(state["init_process_pid"])))
    for i, (kind, path) in enumerate(sorted((state.get("namespace_paths") or {}).items())):
        pairs.append(("  namespace_paths" if i == 0 else "", f"{kind:<10} {path}"))
    out = _title(paint, "PROCESS") + _pairs(pairs)
    rows = [["HOST PID", "PID INSIDE", "COMMAND"]]
    styles: list[list[str | None]] = [[DIM, DIM, DIM]]
    for node in p.get("tree") or []:
        branch = ("   " * (node["depth"] - 1) + "└─ ") if node["depth"] else ""
        command = node["command"] if len(node["command"]) <= 70 else node["command"][:67] + "..."
        rows.append([str(node["host_pid"]), "-" if node["pid"] is None else str(node["pid"]), branch + command])
        styles.append([None, GREEN if node["role"] == "init" else None, None])
    return out + [""] + table(rows, paint, styles=styles)


def _namespaces(data: dict, paint: Painter) -> list[str]:
    ns = data["namespaces"]
    rows = [["TYPE", "HOST", "CONTAINER", ""]]
    styles: list[list[str | None]] = [[DIM] * 4]
    for row in ns["list"]:
        mark = "?" if row["new"] is None else "new" if row["new"] else "shared"
        rows.append([row["type"], str(row["host"] or "?"), str(row["container"] or "?"), mark])
        styles.append([None, None, None, GREEN if mark == "new" else DIM if mark == "shared" else None])
    return _title(paint, "NAMESPACES", ns["reference"]["note"]) + table(rows, paint, styles=styles)


def _rootfs(data: dict, paint: Painter) -> list[str]:
    fs = data["rootfs"]
    mode = "read-only" if fs["readonly"] else "read-write"
    out = _title(paint, "ROOT FILESYSTEM", f"{fs.get('driver') or '-'}, {mode}")
    out += _pairs([("rootfs", fs.get("path") or "-"), ("upper dir", fs.get("upper_dir") or "-")])
    if fs.get("layers"):
        rows = [["LOWER DIR (top first)", "LAYER", "DIFF ID", "CHAIN ID"]]
        for layer in fs["layers"]:
            rows.append([layer["lower_dir"], "-" if layer["index"] is None else f"#{layer['index']}",
                         _short(layer["diff_id"]), _short(layer["chain_id"])])
        out += [""] + table(rows, paint, styles=[[DIM] * 4])
    if fs.get("mounts") is not None:
        out += ["", f"  mounts that differ from the host's: {len(fs['mounts'])} ({fs['shared_mounts']} the same)"]
        rows = [["MOUNT POINT", "TYPE", "OPTIONS", "ON THE HOST"]]
        for m in fs["mounts"]:
            host = "not mounted" if m["host"] == "container-only" else f"{m['host_fstype']} (another one)"
            rows.append([m["mount_point"], m["fstype"], m["options"], host])
        out += table(rows, paint, styles=[[DIM] * 4])
    pairs: list[tuple[str, str | list[str]]] = []
    for key, label in (("masked_paths", "masked"), ("readonly_paths", "read-only")):
        paths = fs.get(key) or []
        if not paths:
            continue
        words = [p["path"] for p in paths if p["applied"] is not False]
        missing = [p["path"] for p in paths if p["applied"] is False and p.get("exists")]
        absent = [p["path"] for p in paths if p["applied"] is False and not p.get("exists")]
        if missing:
            words += ["NOT APPLIED:", *missing]
        if absent:
            words += ["(absent here:", *absent[:-1], absent[-1] + ")"]
        pairs.append((label, wrap(words)))
    return out + ([""] + _pairs(pairs) if pairs else [])


def _mounts(path: str, controllers: list[str], directories: dict) -> str:
    """Where the hierarchies holding `path` are mounted: /sys/fs/cgroup/<controller> when they
    follow that pattern, else the first one."""
    mounts = {}
    for c in controllers:
        directory = directories.get(c) or ""
        mounts[c] = directory[:-len(path)] if path != "/" and directory.endswith(path) else directory
    names = {c: c.removeprefix("name=") for c in controllers}
    prefixes = {m[:-len(names[c])] for c, m in mounts.items() if m.endswith("/" + names[c])}
    if len(controllers) > 1 and len(prefixes) == 1 and all(m.endswith("/" + names[c]) for c, m in mounts.items()):
        return prefixes.pop() + "<controller>"
    return mounts[controllers[0]] or "-"


def _cgroup(data: dict, paint: Painter) -> list[str]:
    cg = data["cgroup"]
    note = f"v{cg['version']} ({cg['mode']})"
    out = _title(paint, "CGROUP", note)
    relative = cg.get("relative") or {}
    directories = {**(cg.get("paths") or {}), "cgroup2": cg.get("unified")}
    by_path: dict[str, list[str]] = {}
    for controller, path in relative.items():
        by_path.setdefault(path, []).append(controller)
    pairs: list[tuple[str, str | list[str]]] = []
    for path, controllers in by_path.items():
        where = f"{path}   in {_mounts(path, controllers, directories)}"
        pairs.append(("cgroup2", where) if controllers == ["cgroup2"] else ("v1", [where, *wrap(controllers)]))
    out += _pairs(pairs)
    limits, usage = cg["limits"], cg["usage"]
    cpu = "unlimited" if limits["cpu_quota_us"] is None else \
        f"{limits['cpus']} CPUs ({limits['cpu_quota_us']}us per {limits['cpu_period_us']}us)"
    weight = f"shares {limits['cpu_shares']}" if limits.get("cpu_shares") is not None else \
        f"weight {limits['cpu_weight']}" if limits.get("cpu_weight") is not None else ""
    memory = _limit(limits["memory"])
    if limits["memory"] is not None:
        memory += f" ({limits['memory']} bytes)"
    if limits.get("memory_effective") is not None and limits["memory_effective"] != limits["memory"]:
        memory += f", {_mem(limits['memory_effective'])} from a parent"
    cpu_used = "-" if usage["cpu_ns"] is None else f"{usage['cpu_ns'] / 1e9:.3f}s of CPU time"
    mem_used = _mem(usage["memory"]) + (f" (peak {_mem(usage['memory_peak'])})" if usage.get("memory_peak") else "")
    if usage.get("oom_kills"):
        mem_used += f", {usage['oom_kills']} OOM kills"
    rows = [["", "LIMIT", "USAGE"], ["memory", memory, mem_used],
            ["cpu", cpu + (f", {weight}" if weight else ""), cpu_used],
            ["pids", _limit(limits["pids"], str), "-" if usage["pids"] is None else str(usage["pids"])]]
    return out + [""] + table(rows, paint, styles=[[DIM] * 3])


def _security(data: dict, paint: Painter) -> list[str]:
    caps, sc, userns = data["capabilities"], data["seccomp"], data["user_namespace"]
    total = caps["last_cap"] + 1
    kept = wrap([c.removeprefix("CAP_").lower() for c in caps["kept"]] or ["none"])
    dropped = wrap([c.removeprefix("CAP_").lower() for c in caps["dropped"]] or ["none"])
    profile = {"default": "Docker's default profile", "unconfined": "unconfined", "custom": "a custom profile",
               "none": "none"}.get(sc["profile"], sc["profile"])
    seccomp = f"{sc['mode_name']} (mode {sc['mode']}), {profile}"
    if sc.get("syscall_rules") is not None:
        seccomp += f": {sc['syscall_rules']} rules, default action {sc['default_action']}"

    def maps(entries: list[dict]) -> str:
        return ", ".join(f"{e['inside']}->{e['outside']} ({e['count']})" for e in entries) or "-"

    user = ("own namespace" if userns["new"] else "the host's") + \
        f": uid {maps(userns['uid_map'])}; gid {maps(userns['gid_map'])}"
    pairs = [("capabilities", f"{len(caps['kept'])} of {total} kept (CapEff {caps['effective']})"),
             ("  kept", kept), (f"  dropped ({len(caps['dropped'])})", dropped),
             ("seccomp", seccomp), ("no_new_privs", "yes" if data["no_new_privs"] else "no"), ("user", user)]
    return _title(paint, "SECURITY") + _pairs(pairs)


def _network(data: dict, paint: Painter) -> list[str]:
    net = data["network"]
    where = "own namespace" if net["namespace_new"] else "the host's namespace"
    out = _title(paint, "NETWORK", f"{net['mode']}, {where}")
    if net.get("error"):
        out.append(f"  (could not read the namespace: {net['error']})")
    if net.get("interfaces"):
        rows = [["INTERFACE", "STATE", "MTU", "MAC", "ADDRESSES"]]
        for i in net["interfaces"]:
            rows.append([i["name"], i["state"] or "-", str(i["mtu"] or "-"), i["mac"] or "-",
                         " ".join(i["addresses"]) or "-"])
        out += table(rows, paint, styles=[[DIM] * 5])
    ports = [f"{p['host_ip'] or '0.0.0.0'}:{p['host_port']}->{p['container_port']}/{p['protocol']}"
             if p["host_port"] else f"{p['container_port']}/{p['protocol']} (not published)" for p in net["ports"]]
    out += _pairs([("ports", ", ".join(ports) or "none published")])
    return out


def _exit(data: dict, paint: Painter) -> list[str]:
    e, left = data["exit"], data["left"] or {}
    code = str(e["exit_code"])
    if isinstance(e["exit_code"], int) and e["exit_code"] > 128:
        code += f"   (128 + signal {e['exit_code'] - 128})"
    out = _title(paint, "EXIT") + _pairs([("exit code", code), ("OOM killed", "yes" if e["oom_killed"] else "no"),
                                          ("finished at", e["finished_at"] or "-"), ("error", e["error"] or "-")])
    layer = left.get("upper_dir")
    out += _title(paint, "LEFT BEHIND", "no process, namespaces or cgroup: those went with it")
    out += _pairs([("writable layer", f"{layer} ({_size(left.get('upper_size'))})" if layer else "gone"),
                   ("log", f"{left['log_path']} ({_size(left.get('log_size'))})" if left.get("log_path") else "none"),
                   ("runtime state", left.get("runtime_state") or "gone")])
    return out


def render_container(data: dict, paint: Painter) -> str:
    image = data["image"]
    head = [f"{paint('CONTAINER', BOLD)}  {data['name']}   {data['id'][:12]}   {paint(data['status'], BOLD)}   "
            f"image {image.get('name')} ({_short(image.get('id'))})   runtime {data['runtime']}"]
    out = head
    if data.get("process"):
        out += _process(data, paint) + _namespaces(data, paint)
    if data.get("rootfs"):
        out += _rootfs(data, paint)
    if data.get("cgroup"):
        out += _cgroup(data, paint)
    if data.get("capabilities"):
        out += _security(data, paint)
    if data.get("network"):
        out += _network(data, paint)
    if data.get("exit"):
        out += _exit(data, paint)
    return "\n".join(out) + "\n"


# -- image ----------------------------------------------------------------------------------------------

def render_image(data: dict, paint: Painter) -> str:
    names = ", ".join(data["names"]) or "<none>"
    out = [f"{paint('IMAGE', BOLD)}  {names}   {_short(data['id'])}   {data['os']}/{data['architecture']}   "
           f"{_size(data['size'])}   created {data['created'] or '-'}"]
    cfg = data.get("config") or {}
    command = " ".join((cfg.get("entrypoint") or []) + (cfg.get("cmd") or [])) or "-"
    out += _pairs([("command", command), ("workdir", cfg.get("working_dir") or "/"),
                   ("user", cfg.get("user") or "root"), ("ports", " ".join(cfg.get("exposed_ports") or []) or "-")])
    rows = [["#", "DIGEST", "SIZE", "ADDED", "CHANGED", "DELETED", "CREATED BY"]]
    for layer in data["layers"]:
        changes = layer.get("changes") or {}
        created_by = (layer.get("created_by") or "-").replace("\n", " ")
        if len(created_by) > 60:
            created_by = created_by[:57] + "..."
        rows.append([str(layer["index"]), _short(layer["digest"]), _size(layer["size"]),
                     str(changes.get("added", "?")), str(changes.get("changed", "?")),
                     str(changes.get("deleted", "?")), created_by])
    out += _title(paint, "LAYERS", "bottom first; files added, changed and deleted by each") + \
        table(rows, paint, styles=[[DIM] * 7])
    return "\n".join(out) + "\n"


def render(data: dict, colour: bool = False) -> str:
    paint = Painter(colour)
    return render_image(data, paint) if data.get("kind") == "image" else render_container(data, paint)
