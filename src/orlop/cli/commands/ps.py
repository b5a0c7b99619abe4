"""`orlop ps` and `orlop stats`: container tables with docker's columns and formats."""

from __future__ import annotations

import sys
import time

from orlop.cli import units
from orlop.cli.errors import CommandError
from orlop.cli.flags import Spec, command, flag
from orlop.cli.formatter import Format

PS_HEADERS = {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
              "RunningFor": "CREATED", "Ports": "PORTS", "State": "STATE", "Status": "STATUS", "Size": "SIZE",
              "Names": "NAMES", "Labels": "LABELS", "Mounts": "MOUNTS", "LocalVolumes": "LOCAL VOLUMES",
              "Networks": "NETWORKS", "Label": "LABEL", "Platform": "PLATFORM"}
PS_DEFAULT = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"

PS_SPEC = Spec("ps", "orlop ps [OPTIONS]", "List containers", [
    flag("-a, --all", "bool", "Show all containers (default shows just running)"),
    flag("-f, --filter", "list", "Filter output based on conditions provided", metavar="filter"),
    flag("--format", "string", "Format output using a custom template:\n'table': Print output in table format "
         "with column headers (default)\n'table TEMPLATE': Print output in table format using the given Go "
         "template\n'json': Print in JSON format\n'TEMPLATE': Print output using the given Go template"),
    flag("-n, --last", "int", "Show n last created containers (includes all states)", -1),
    flag("-l, --latest", "bool", "Show the latest created container (includes all states)"),
    flag("--no-trunc", "bool", "Don't truncate output"),
    flag("-q, --quiet", "bool", "Only display container IDs"),
    flag("-s, --size", "bool", "Display total file sizes"),
], max_args=0, aliases="orlop container ls, orlop container list, orlop container ps, orlop ps")


def ellipsis(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def go_quote(text: str) -> str:
    """Go's strconv.Quote."""
    out = ['"']
    for c in text:
        o = ord(c)
        if c in '"\\':
            out.append("\\" + c)
        elif c in "\a\b\f\n\r\t\v":
            out.append({"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
                        "\v": "\\v"}[c])
        elif o < 0x20 or o == 0x7f:
            out.append(f"\\x{o:02x}")
        elif not c.isprintable() and o > 0x7f:
            out.append(f"\\u{o:04x}" if o <= 0xffff else f"\\U{o:08x}")
        else:
            out.append(c)
    out.append('"')
    return "".join(out)


def _ports(ports: list[dict]) -> str:
    shown = []
    for p in sorted(ports or [], key=lambda p: (p.get("PrivatePort", 0), p.get("Type", ""), p.get("IP", ""))):
        private = f"{p.get('PrivatePort')}/{p.get('Type', 'tcp')}"
        if p.get("PublicPort"):
            ip = p.get("IP") or "0.0.0.0"
            ip = f"[{ip}]" if ":" in ip else ip
            shown.append(f"{ip}:{p['PublicPort']}->{private}")
        else:
            shown.append(private)
    return ", ".join(dict.fromkeys(shown))


def container_row(c: dict, trunc: bool, now: float) -> dict:
    names = []
    for raw in c.get("Names") or []:
        name = raw[1:] if raw.startswith("/") else raw
        if trunc and "/" in name:
            continue  # a link's name
        names.append(name)
    image = c.get("Image") or "<no image>"
    if trunc:
        if image.startswith("sha256:"):
            image = image[7:19]
        elif "@" in image:
            image = image.partition("@")[0]
    command = c.get("Command") or ""
    labels = c.get("Labels") or {}
    mounts = []
    for m in c.get("Mounts") or []:
        name = m.get("Name") or m.get("Source") or ""
        mounts.append(ellipsis(name, 15) if trunc else name)
    size_rw, size_root = c.get("SizeRw") or 0, c.get("SizeRootFs") or 0
    size = units.human_size(size_rw)
    if size_root > 0:
        size = f"{size} (virtual {units.human_size(size_root)})"
    created = c.get("Created") or 0
    row = {
        "Command": go_quote(ellipsis(command, 20) if trunc else command),
        "CreatedAt": units.local_time(created),
        "ID": c["Id"][:12] if trunc else c["Id"],
        "Image": image,
        "Labels": ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
        "LocalVolumes": str(sum(1 for m in c.get("Mounts") or [] if m.get("Driver") == "local")),
        "Mounts": ",".join(mounts),
        "Names": ",".join(names),
        "Networks": ",".join(sorted(((c.get("NetworkSettings") or {}).get("Networks") or {}).keys())),
        "Platform": None,
        "Ports": _ports(c.get("Ports") or []),
        "RunningFor": units.ago(created, now),
        "Size": size,
        "State": c.get("State") or "",
        "Status": c.get("Status") or "",
    }
    row["Label"] = lambda key: labels.get(key, "")
    return row


@command(PS_SPEC)
def ps(cli, opts, args):
    from orlop.cli.commands.images import filters_json

    fmt = None
    if not opts.quiet or opts.format:
        fmt = Format(opts.format or "", PS_DEFAULT + ("\t{{.Size}}" if opts.size else ""), PS_HEADERS)
    limit = 1 if opts.latest else opts.last
    query = [("all", bool(opts.all)), ("filters", filters_json(opts.filter)),
             ("limit", limit if limit > 0 else None),
             ("size", bool(opts.size) or bool(fmt and not fmt.json and fmt.uses("Size")))]
    containers = cli.client.get("/containers/json", query) or []
    if opts.quiet and not opts.format:
        sys.stdout.write("".join((c["Id"] if opts.no_trunc else c["Id"][:12]) + "\n" for c in containers))
        return 0
    now = time.time()
    rows = [container_row(c, not opts.no_trunc, now) for c in containers]
    sys.stdout.write(fmt.render(rows))
    return 0


STATS_SPEC = Spec("stats", "orlop stats [OPTIONS] [CONTAINER...]", "Display a live stream of container(s) resource "
                  "usage statistics", [
                      flag("-a, --all", "bool", "Show all containers (default shows just running)"),
                      flag("--format", "string", "Format output using a custom template"),
                      flag("--no-stream", "bool", "Disable streaming stats and only pull the first result"),
                      flag("--no-trunc", "bool", "Do not truncate output"),
                  ], aliases="orlop container stats, orlop stats")

STATS_HEADERS = {"Container": "CONTAINER", "ID": "CONTAINER ID", "Name": "NAME", "CPUPerc": "CPU %",
                 "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O", "BlockIO": "BLOCK I/O",
                 "PIDs": "PIDS"}
STATS_DEFAULT = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}"


def stats_row(sample: dict, shown_name: str, trunc: bool) -> dict:
    """docker's calculateCPUPercentUnix / memory without the page cache / I/O sums."""
    cpu, pre = sample.get("cpu_stats") or {}, sample.get("precpu_stats") or {}
    cpu_delta = (cpu.get("cpu_usage") or {}).get("total_usage", 0) - (pre.get("cpu_usage") or {}).get("total_usage", 0)
    system_delta = (cpu.get("system_cpu_usage") or 0) - (pre.get("system_cpu_usage") or 0)
    online = cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {}).get("percpu_usage") or []) or 1
    cpu_percent = cpu_delta / system_delta * online * 100.0 if system_delta > 0 and cpu_delta > 0 else 0.0
    memory = sample.get("memory_stats") or {}
    usage = memory.get("usage") or 0
    detail = memory.get("stats") or {}
    cache = detail.get("total_inactive_file", detail.get("inactive_file", 0)) or 0
    if cache < usage:
        usage -= cache
    limit = memory.get("limit") or 0
    rx = tx = 0
    for network in (sample.get("networks") or {}).values():
        rx += network.get("rx_bytes", 0)
        tx += network.get("tx_bytes", 0)
    read = write = 0
    for entry in ((sample.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []):
        op = (entry.get("op") or "").lower()
        if op == "read":
            read += entry.get("value", 0)
        elif op == "write":
            write += entry.get("value", 0)
    cid = sample.get("id") or ""
    running = sample.get("read", "").startswith("0001") is False and bool(sample.get("read"))
    return {
        "Container": shown_name, "ID": cid if not trunc else cid[:12], "Name": (sample.get("name") or "").lstrip("/") or "--",
        "CPUPerc": f"{cpu_percent:.2f}%" if running else "--",
        "MemUsage": f"{units.bytes_size(usage)} / {units.bytes_size(limit)}" if running else "-- / --",
        "MemPerc": (f"{usage / limit * 100:.2f}%" if limit else "0.00%") if running else "--",
        "NetIO": f"{units.human_size(rx)} / {units.human_size(tx)}" if running else "--",
        "BlockIO": f"{units.human_size(read)} / {units.human_size(write)}" if running else "--",
        "PIDs": str((sample.get("pids_stats") or {}).get("current", 0)) if running else "--",
    }


def _sample(cli, target: str, results: dict, stream: bool) -> None:
    from orlop.cli.client import APIError, ConnectError

    try:
        response = cli.client.request("GET", f"/containers/{target}/stats", {"stream": stream})
        try:
            for sample in response.json_lines():
                results[target] = sample
                if not stream:
                    break
        finally:
            response.close()
    except (APIError, ConnectError) as e:
        results[target] = e


@command(STATS_SPEC)
def stats(cli, opts, args):
    import threading

    from orlop.cli.client import APIError

    targets = list(args)
    if not targets:
        targets = [c["Id"] for c in cli.client.get("/containers/json", {"all": bool(opts.all)}) or []]
    fmt = Format(opts.format or "", STATS_DEFAULT, STATS_HEADERS)
    results: dict[str, object] = {}
    threads = [threading.Thread(target=_sample, args=(cli, t, results, not opts.no_stream), daemon=True)
               for t in targets]
    for thread in threads:
        thread.start()

    def render() -> str:
        rows = []
        for target in targets:
            sample = results.get(target)
            if isinstance(sample, APIError):
                if sample.status == 404 and sample.message == "page not found":
                    raise CommandError(f"the daemon at {cli.host} does not serve container statistics "
                                       "(GET /containers/{id}/stats)")
                raise CommandError(f"Error response from daemon: {sample.message}")
            if isinstance(sample, Exception):
                raise CommandError(str(sample))
            if sample is not None:
                rows.append(stats_row(sample, target, not opts.no_trunc))
        return fmt.render(rows)

    if opts.no_stream:
        for thread in threads:
            thread.join()
        sys.stdout.write(render())
        return 0
    try:
        while True:
            time.sleep(1.0)
            text = render()
            sys.stdout.write("\x1b[2J\x1b[H" + text if sys.stdout.isatty() else text)
            sys.stdout.flush()
            if not any(t.is_alive() for t in threads) and targets:
                return 0
    except KeyboardInterrupt:
        return 0
