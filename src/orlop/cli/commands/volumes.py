"""`orlop volume create/ls/inspect/rm/prune`, with docker's flags and output."""

from __future__ import annotations

import sys

from orlop.cli import units
from orlop.cli.commands.common import key_values, report_errors
from orlop.cli.flags import Spec, command, flag
from orlop.cli.formatter import Format

VOLUME_HEADERS = {"Name": "VOLUME NAME", "Driver": "DRIVER", "Scope": "SCOPE", "Mountpoint": "MOUNTPOINT",
                  "Labels": "LABELS", "Links": "LINKS", "Size": "SIZE"}


CREATE_SPEC = Spec("volume create", "orlop volume create [OPTIONS] [VOLUME]", "Create a volume", [
    flag("-d, --driver", "string", "Specify volume driver name", "local"),
    flag("--label", "list", "Set metadata for a volume"),
    flag("-o, --opt", "list", "Set driver specific options", metavar="map"),
], max_args=1)


@command(CREATE_SPEC)
def create(cli, opts, args):
    body = {"Name": args[0] if args else "", "Driver": opts.driver, "DriverOpts": key_values(opts.opt, "option"),
            "Labels": key_values(opts.label, "label")}
    volume = cli.client.post("/volumes/create", body=body)
    sys.stdout.write(volume["Name"] + "\n")
    return 0


LS_SPEC = Spec("volume ls", "orlop volume ls [OPTIONS]", "List volumes", [
    flag("-f, --filter", "list", "Provide filter values (e.g. \"dangling=true\")", metavar="filter"),
    flag("--format", "string", "Format output using a custom template"),
    flag("-q, --quiet", "bool", "Only display volume names"),
], max_args=0, aliases="orlop volume ls, orlop volume list")


def _labels(labels: dict | None) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted((labels or {}).items()))


@command(LS_SPEC)
def ls(cli, opts, args):
    from orlop.cli.commands.images import filters_json

    found = cli.client.get("/volumes", {"filters": filters_json(opts.filter)}) or {}
    volumes = sorted(found.get("Volumes") or [], key=lambda v: v["Name"])
    if opts.quiet:
        sys.stdout.write("".join(v["Name"] + "\n" for v in volumes))
        return 0
    rows = [{"Name": v["Name"], "Driver": v.get("Driver", ""), "Scope": v.get("Scope", "local"),
             "Mountpoint": v.get("Mountpoint", ""), "Labels": _labels(v.get("Labels")), "Links": "N/A",
             "Size": "N/A"} for v in volumes]
    fmt = Format(opts.format or "", "table {{.Driver}}\t{{.Name}}", VOLUME_HEADERS)
    sys.stdout.write(fmt.render(rows))
    return 0


INSPECT_SPEC = Spec("volume inspect", "orlop volume inspect [OPTIONS] VOLUME [VOLUME...]",
                    "Display detailed information on one or more volumes", [
                        flag("-f, --format", "string", "Format output using a custom template"),
                    ], min_args=1)


@command(INSPECT_SPEC)
def inspect(cli, opts, args):
    from orlop.cli.commands.system import inspect_kind

    return inspect_kind(cli, args, "volume", opts.format)


RM_SPEC = Spec("volume rm", "orlop volume rm [OPTIONS] VOLUME [VOLUME...]", "Remove one or more volumes. You "
               "cannot remove a volume that is in use by a container.", [
                   flag("-f, --force", "bool", "Force the removal of one or more volumes"),
               ], min_args=1, aliases="orlop volume rm, orlop volume remove")


@command(RM_SPEC)
def rm(cli, opts, args):
    from orlop.cli.client import APIError

    errors = []
    for name in args:
        try:
            cli.client.call("DELETE", f"/volumes/{name}", {"force": opts.force})
        except APIError as e:
            errors.append(e.message)
            continue
        sys.stdout.write(name + "\n")
    return report_errors(errors)


PRUNE_SPEC = Spec("volume prune", "orlop volume prune [OPTIONS]", "Remove unused local volumes", [
    flag("-a, --all", "bool", "Remove all unused volumes, not just anonymous ones"),
    flag("--filter", "list", "Provide filter values (e.g. \"label=<label>\")", metavar="filter"),
    flag("-f, --force", "bool", "Do not prompt for confirmation"),
], max_args=0)


@command(PRUNE_SPEC)
def prune(cli, opts, args):
    from orlop.cli.commands.images import confirm, filters_json

    warning = ("WARNING! This will remove all local volumes not used by at least one container." if opts.all
               else "WARNING! This will remove anonymous local volumes not used by at least one container.")
    if not opts.force and not confirm(warning + "\nAre you sure you want to continue?"):
        return 0
    result = cli.client.post("/volumes/prune", {"filters": filters_json(opts.filter, {"all": ["true"]} if opts.all
                                                                       else None)}) or {}
    deleted = result.get("VolumesDeleted") or []
    if deleted:
        sys.stdout.write("Deleted Volumes:\n" + "".join(name + "\n" for name in deleted) + "\n")
    sys.stdout.write(f"Total reclaimed space: {units.human_size(int(result.get('SpaceReclaimed') or 0))}\n")
    return 0
