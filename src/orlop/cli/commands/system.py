"""System commands: version, info, events, inspect, system prune."""

from __future__ import annotations

import os
import sys

from orlop.cli import gojson, units
from orlop.cli.client import API_PREFIX, APIError, ConnectError
from orlop.cli.errors import CommandError
from orlop.cli.flags import Spec, command, flag
from orlop.cli.formatter import tabwrite
from orlop.cli.template import Template, TemplateError


def _template(text: str) -> Template:
    try:
        return Template(text)
    except TemplateError as e:
        raise CommandError(str(e)) from None


def _execute(template: Template, data) -> str:
    try:
        return template.execute(data)
    except TemplateError as e:
        raise CommandError(str(e)) from None


# -- version --------------------------------------------------------------------------------------
VERSION_SPEC = Spec("version", "orlop version [OPTIONS]", "Show the orlop version information", [
    flag("-f, --format", "string", "Format output using a custom template"),
], max_args=0)


def _client_version() -> dict:
    from orlop import __version__

    machine = os.uname().machine
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)
    return {"Platform": {"Name": "orlop"}, "Version": __version__, "ApiVersion": API_PREFIX[2:],
            "DefaultAPIVersion": API_PREFIX[2:], "GitCommit": "", "GoVersion": "python" + ".".join(map(str, sys.version_info[:3])),
            "Os": "linux", "Arch": arch, "BuildTime": "", "Context": "default"}


@command(VERSION_SPEC)
def version(cli, opts, args):
    client_info = _client_version()
    server = None
    error = None
    try:
        server = cli.client.get("/version")
    except (APIError, ConnectError) as e:
        error = e
    if opts.format:
        template = _template(opts.format.replace("\\t", "\t").replace("\\n", "\n"))
        sys.stdout.write(_execute(template, {"Client": client_info, "Server": server}) + "\n")
    else:
        lines = ["Client:", f" Version:\t{client_info['Version']}", f" API version:\t{client_info['ApiVersion']}",
                 f" Python version:\t{client_info['GoVersion'][len('python'):]}",
                 f" OS/Arch:\t{client_info['Os']}/{client_info['Arch']}", f" Context:\t{client_info['Context']}"]
        if server:
            lines += ["", "Server:"]
            for component in server.get("Components") or []:
                details = component.get("Details") or {}
                lines.append(f" {component.get('Name')}:")
                lines.append(f"  Version:\t{component.get('Version')}")
                if component.get("Name") == "Engine":
                    lines += [f"  API version:\t{server.get('ApiVersion')} (minimum version "
                              f"{server.get('MinAPIVersion')})",
                              f"  Python version:\t{(server.get('GoVersion') or '').removeprefix('python')}",
                              f"  Git commit:\t{server.get('GitCommit') or ''}",
                              f"  Built:\t{server.get('BuildTime') or ''}",
                              f"  OS/Arch:\t{server.get('Os')}/{server.get('Arch')}",
                              f"  Experimental:\t{str(bool(server.get('Experimental'))).lower()}"]
                else:
                    lines.extend(f"  {k}:\t{v}" for k, v in details.items())
        sys.stdout.write(tabwrite(lines, minwidth=20, padding=1))
    if error is not None:
        raise error
    return 0


# -- info -----------------------------------------------------------------------------------------
INFO_SPEC = Spec("info", "orlop info [OPTIONS]", "Display system-wide information", [
    flag("-f, --format", "string", "Format output using a custom template"),
], max_args=0, aliases="orlop system info, orlop info")


@command(INFO_SPEC)
def info(cli, opts, args):
    from orlop import __version__

    if opts.format:
        data = cli.client.get("/info") or {}
        data = {**data, "ClientInfo": {"Version": __version__, "Context": "default", "Debug": False}}
        template = _template(opts.format.replace("\\t", "\t").replace("\\n", "\n"))
        sys.stdout.write(_execute(template, data) + "\n")
        return 0
    sys.stdout.write(f"Client:\n Version:    {__version__}\n Context:    default\n Debug Mode: false\n\n")
    sys.stdout.flush()
    data = cli.client.get("/info") or {}
    out = ["Server:", f" Containers: {data.get('Containers', 0)}", f"  Running: {data.get('ContainersRunning', 0)}",
           f"  Paused: {data.get('ContainersPaused', 0)}", f"  Stopped: {data.get('ContainersStopped', 0)}",
           f" Images: {data.get('Images', 0)}", f" Server Version: {data.get('ServerVersion', '')}",
           f" Storage Driver: {data.get('Driver', '')}"]
    out += [f"  {k}: {v}" for k, v in data.get("DriverStatus") or []]
    out += [f" Logging Driver: {data.get('LoggingDriver', '')}", f" Cgroup Driver: {data.get('CgroupDriver', '')}",
            f" Cgroup Version: {data.get('CgroupVersion', '')}", " Plugins:"]
    for kind in ("Volume", "Network", "Log"):
        out.append(f"  {kind}: {' '.join((data.get('Plugins') or {}).get(kind) or [])}")
    swarm = (data.get("Swarm") or {}).get("LocalNodeState") or "inactive"
    out += [f" Swarm: {swarm}", f" Runtimes: {' '.join((data.get('Runtimes') or {}).keys())}",
            f" Default Runtime: {data.get('DefaultRuntime', '')}", f" Init Binary: {data.get('InitBinary', '')}"]
    security = data.get("SecurityOptions") or []
    if security:
        out.append(" Security Options:")
        for option in security:
            fields = dict(part.partition("=")[::2] for part in option.split(","))
            out.append(f"  {fields.get('name', option)}")
            out += [f"   {k.capitalize()}: {v}" for k, v in fields.items() if k != "name"]
    out += [f" Kernel Version: {data.get('KernelVersion', '')}", f" Operating System: {data.get('OperatingSystem', '')}",
            f" OSType: {data.get('OSType', '')}", f" Architecture: {data.get('Architecture', '')}",
            f" CPUs: {data.get('NCPU', 0)}", f" Total Memory: {units.bytes_size(data.get('MemTotal') or 0)}",
            f" Name: {data.get('Name', '')}"] + ([f" ID: {data['ID']}"] if data.get("ID") else []) + [
            f" Docker Root Dir: {data.get('DockerRootDir', '')}", f" Debug Mode: {str(bool(data.get('Debug'))).lower()}",
            f" Experimental: {str(bool(data.get('ExperimentalBuild'))).lower()}"]
    insecure = (data.get("RegistryConfig") or {}).get("InsecureRegistryCIDRs") or []
    if insecure:
        out.append(" Insecure Registries:")
        out += [f"  {cidr}" for cidr in insecure]
    out.append(f" Live Restore Enabled: {str(bool(data.get('LiveRestoreEnabled'))).lower()}")
    out.append("")
    sys.stdout.write("\n".join(out) + "\n")
    for warning in data.get("Warnings") or []:
        sys.stderr.write(warning + "\n")
    return 0


# -- events ---------------------------------------------------------------------------------------
EVENTS_SPEC = Spec("events", "orlop events [OPTIONS]", "Get real time events from the server", [
    flag("-f, --filter", "list", "Filter output based on conditions provided", metavar="filter"),
    flag("--format", "string", "Format output using a custom template"),
    flag("--since", "string", "Show all events created since timestamp"),
    flag("--until", "string", "Stream events until this timestamp"),
], max_args=0, aliases="orlop system events, orlop events")


def event_line(event: dict) -> str:
    """docker's printOutput: `<time> <type> <action> <id> (k=v, …)`."""
    out = ""
    if event.get("timeNano"):
        out = units.rfc3339_nano_local(event["timeNano"]) + " "
    elif event.get("time"):
        out = units.rfc3339_nano_local(int(event["time"]) * 1_000_000_000) + " "
    actor = event.get("Actor") or {}
    out += f"{event.get('Type', '')} {event.get('Action', '')} {actor.get('ID', event.get('id', ''))}"
    attributes = actor.get("Attributes") or {}
    if attributes:
        out += " (" + ", ".join(f"{k}={attributes[k]}" for k in sorted(attributes)) + ")"
    return out


@command(EVENTS_SPEC)
def events(cli, opts, args):
    from orlop.cli.commands.images import filters_json
    from orlop.cli.formatter import Format

    try:
        since = units.timestamp_argument(opts.since) if opts.since else None
        until = units.timestamp_argument(opts.until) if opts.until else None
    except ValueError as e:
        raise CommandError(str(e)) from None
    fmt = Format(opts.format, "", {}) if opts.format else None
    response = cli.client.request("GET", "/events", {"filters": filters_json(opts.filter), "since": since,
                                                     "until": until})
    try:
        for event in response.json_lines():
            if fmt is not None:
                text = fmt.template.execute(event)
            else:
                text = event_line(event)
            sys.stdout.write(text + "\n")
            sys.stdout.flush()
    except KeyboardInterrupt:
        return 0
    finally:
        response.close()
    return 0


# -- inspect --------------------------------------------------------------------------------------
INSPECT_SPEC = Spec("inspect", "orlop inspect [OPTIONS] NAME|ID [NAME|ID...]", "Return low-level information on "
                    "orlop objects", [
                        flag("-f, --format", "string", "Format output using a custom template"),
                        flag("-s, --size", "bool", "Display total file sizes if the type is container"),
                        flag("--type", "string", "Only inspect objects of the given type"),
                    ], min_args=1)

_KINDS = {
    "container": ("/containers/{}/json", "container"),
    "image": ("/images/{}/json", "image"),
    "network": ("/networks/{}", "network"),
    "volume": ("/volumes/{}", "volume"),
    "plugin": ("/plugins/{}/json", "plugin"),
}


def _inspect(cli, names: list[str], kind: str | None, fmt: str | None, size: bool) -> int:
    if kind and kind not in _KINDS:
        raise CommandError(f"\"{kind}\" is not a valid value for --type")
    kinds = [kind] if kind else list(_KINDS)
    template = _template(fmt) if fmt else None
    found = []
    missing = []
    for name in names:
        error = f"Error: No such object: {name}"
        for k in kinds:
            path = _KINDS[k][0].format(name)
            try:
                value = cli.client.get(path, {"size": True} if size and k == "container" else None)
            except APIError as e:
                if e.status == 404:
                    if kind:  # one type: the daemon's own words, as docker shows them
                        error = f"Error response from daemon: {e.message}"
                    continue
                raise
            found.append(value)
            break
        else:
            missing.append(error)
    if template is None:
        sys.stdout.write(gojson.dumps(found, indent="    ", escape_html=False) + "\n")
    else:
        for value in found:
            sys.stdout.write(_execute(template, value) + "\n")
    if missing:
        sys.stdout.flush()
        sys.stderr.write("".join(m + "\n" for m in missing))
        return 1
    return 0


def inspect_kind(cli, names: list[str], kind: str, fmt: str | None) -> int:
    """`orlop volume inspect`, `network inspect`: inspect of one kind of object."""
    return _inspect(cli, names, kind, fmt, False)


@command(INSPECT_SPEC)
def inspect(cli, opts, args):
    return _inspect(cli, args, opts.type, opts.format, opts.size)


CONTAINER_INSPECT_SPEC = Spec("container inspect", "orlop container inspect [OPTIONS] CONTAINER [CONTAINER...]",
                              "Display detailed information on one or more containers", [
                                  flag("-f, --format", "string", "Format output using a custom template"),
                                  flag("-s, --size", "bool", "Display total file sizes"),
                              ], min_args=1)


@command(CONTAINER_INSPECT_SPEC)
def container_inspect(cli, opts, args):
    return _inspect(cli, args, "container", opts.format, opts.size)


IMAGE_INSPECT_SPEC = Spec("image inspect", "orlop image inspect [OPTIONS] IMAGE [IMAGE...]",
                          "Display detailed information on one or more images", [
                              flag("-f, --format", "string", "Format output using a custom template"),
                          ], min_args=1)


@command(IMAGE_INSPECT_SPEC)
def image_inspect(cli, opts, args):
    return _inspect(cli, args, "image", opts.format, False)


# -- system prune ---------------------------------------------------------------------------------
PRUNE_SPEC = Spec("system prune", "orlop system prune [OPTIONS]", "Remove unused data", [
    flag("-a, --all", "bool", "Remove all unused images not just dangling ones"),
    flag("--filter", "list", "Provide filter values (e.g. \"label=<key>=<value>\")", metavar="filter"),
    flag("-f, --force", "bool", "Do not prompt for confirmation"),
    flag("--volumes", "bool", "Prune anonymous volumes"),
], max_args=0)


@command(PRUNE_SPEC)
def prune(cli, opts, args):
    from orlop.cli.commands.containers import prune_containers
    from orlop.cli.commands.images import confirm, filters_json, prune_images

    items = ["all stopped containers", "all networks not used by at least one container"]
    if opts.volumes:
        items.append("all anonymous volumes not used by at least one container")
    items += ["all images without at least one container associated to them" if opts.all else "all dangling images",
              "unused build cache" if not opts.all else "all build cache"]
    warning = "WARNING! This will remove:\n" + "".join(f"  - {item}\n" for item in items)
    if not opts.force and not confirm(warning + "\nAre you sure you want to continue?"):
        return 0
    total = 0
    removed, reclaimed = prune_containers(cli, opts.filter)
    total += reclaimed
    if removed:
        sys.stdout.write("Deleted Containers:\n" + "".join(c + "\n" for c in removed) + "\n")
    for path, title, key in (("/networks/prune", "Deleted Networks:", "NetworksDeleted"),
                             ("/volumes/prune", "Deleted Volumes:", "VolumesDeleted")):
        if path == "/volumes/prune" and not opts.volumes:
            continue
        try:
            result = cli.client.post(path, {"filters": filters_json(opts.filter)}) or {}
        except APIError as e:
            if e.status in (404, 405):
                continue  # the daemon has no such objects yet
            raise
        names = result.get(key) or []
        total += int(result.get("SpaceReclaimed") or 0)
        if names:
            sys.stdout.write(title + "\n" + "".join(n + "\n" for n in names) + "\n")
    lines, reclaimed = prune_images(cli, opts.all, opts.filter)
    total += reclaimed
    if lines:
        sys.stdout.write("Deleted Images:\n" + "".join(line + "\n" for line in lines) + "\n")
    caches, reclaimed = prune_build_cache(cli, opts.all, opts.filter)
    total += reclaimed
    if caches:
        sys.stdout.write("Deleted build cache objects:\n" + "".join(c + "\n" for c in caches) + "\n")
    sys.stdout.write(f"Total reclaimed space: {units.human_size(total)}\n")
    return 0


def prune_build_cache(cli, all_cache: bool, filters: list[str]) -> tuple[list[str], int]:
    from orlop.cli.commands.images import filters_json

    result = cli.client.post("/build/prune", {"all": all_cache, "filters": filters_json(filters)}) or {}
    return list(result.get("CachesDeleted") or []), int(result.get("SpaceReclaimed") or 0)


BUILDER_PRUNE_SPEC = Spec("builder prune", "orlop builder prune", "Remove build cache", [
    flag("-a, --all", "bool", "Remove all unused build cache, not just dangling ones"),
    flag("--filter", "list", "Provide filter values (e.g. \"until=24h\")", metavar="filter"),
    flag("-f, --force", "bool", "Do not prompt for confirmation"),
], max_args=0)


@command(BUILDER_PRUNE_SPEC)
def builder_prune(cli, opts, args):
    from orlop.cli.commands.images import confirm

    if not opts.force and not confirm("WARNING! This will remove all dangling build cache.\n"
                                      "Are you sure you want to continue?"):
        return 0
    caches, reclaimed = prune_build_cache(cli, opts.all, opts.filter)
    if caches:
        sys.stdout.write("Deleted build cache objects:\n" + "".join(c + "\n" for c in caches) + "\n")
    sys.stdout.write(f"Total reclaimed space: {units.human_size(reclaimed)}\n")
    return 0
