"""`orlop network create/ls/inspect/rm/connect/disconnect/prune`, with docker's flags and
output."""

from __future__ import annotations

import sys

from orlop.cli.commands.common import key_values, report_errors
from orlop.cli.errors import CommandError
from orlop.cli.flags import Spec, command, flag
from orlop.cli.formatter import Format

NETWORK_HEADERS = {"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE", "IPv6": "IPV6",
                   "Internal": "INTERNAL", "Labels": "LABELS", "CreatedAt": "CREATED AT"}

CREATE_SPEC = Spec("network create", "orlop network create [OPTIONS] NETWORK", "Create a network", [
    flag("--attachable", "bool", "Enable manual container attachment"),
    flag("-d, --driver", "string", "Driver to manage the Network", "bridge"),
    flag("--gateway", "list", "IPv4 or IPv6 Gateway for the master subnet", metavar="strings"),
    flag("--internal", "bool", "Restrict external access to the network"),
    flag("--ip-range", "list", "Allocate container ip from a sub-range", metavar="strings"),
    flag("--ipam-driver", "string", "IP Address Management Driver", "default"),
    flag("--ipv4", "bool", "Enable or disable IPv4 address assignment", True),
    flag("--ipv6", "bool", "Enable or disable IPv6 address assignment"),
    flag("--label", "list", "Set metadata on a network"),
    flag("-o, --opt", "list", "Set driver specific options", metavar="map"),
    flag("--subnet", "list", "Subnet in CIDR format that represents a network segment", metavar="strings"),
], min_args=1, max_args=1)


def _ipam_configs(subnets: list[str], gateways: list[str], ranges: list[str]) -> list[dict]:
    """--subnet/--gateway/--ip-range: one IPAM config per subnet, each gateway and range
    given to the subnet that contains it (as the docker CLI pairs them, so that
    `--subnet 10.9.0.0/24 --subnet fd00:1::/64 --gateway fd00:1::1` gives the gateway to the
    IPv6 subnet), with the docker CLI's refusals."""
    import ipaddress

    if len(subnets) < len(ranges) or len(subnets) < len(gateways):
        raise CommandError("every ip-range or gateway must have a corresponding subnet")

    def network(text: str):
        try:
            return ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise CommandError(f"invalid CIDR address: {text}") from None

    def address(text: str):
        try:
            return ipaddress.ip_address(text)
        except ValueError:
            return network(text)

    parsed = {}
    for subnet in subnets:
        net = network(subnet)
        if any(net.version == other.version and net.overlaps(other) for other in parsed.values()):
            raise CommandError("multiple overlapping subnet configuration is not supported")
        parsed[subnet] = net
    configs = {subnet: {"Subnet": subnet} for subnet in subnets}

    def contains(net, item) -> bool:
        return item.version == net.version and (item in net if not hasattr(item, "prefixlen") else
                                                item.subnet_of(net))

    for value, key, what in [(r, "IPRange", "range") for r in ranges] + [(g, "Gateway", "gateway") for g in gateways]:
        item = network(value) if key == "IPRange" else address(value)
        owners = [subnet for subnet, net in parsed.items() if contains(net, item)]
        if not owners:
            raise CommandError(f"no matching subnet for {what} {value}")
        for subnet in owners:
            if key in configs[subnet]:
                plural = "ranges" if key == "IPRange" else "gateways"
                verb = "on" if key == "IPRange" else "for"
                raise CommandError(f"cannot configure multiple {plural} ({value}, {configs[subnet][key]}) {verb} the "
                                   f"same subnet ({subnet})")
            configs[subnet][key] = value
    # the docker CLI's field order: Subnet, IPRange, Gateway
    return [{k: c[k] for k in ("Subnet", "IPRange", "Gateway") if k in c} for c in configs.values()]


@command(CREATE_SPEC)
def create(cli, opts, args):
    # The docker CLI's body, field for field in its order (EnableIPv4/EnableIPv6 only when given).
    body: dict = {"Driver": opts.driver, "Scope": ""}
    if "ipv4" in opts.changed:
        body["EnableIPv4"] = bool(opts.ipv4)
    if "ipv6" in opts.changed:
        body["EnableIPv6"] = bool(opts.ipv6)
    body.update({
        "IPAM": {"Driver": opts.ipam_driver, "Options": {},
                 "Config": _ipam_configs(opts.subnet or [], opts.gateway or [], opts.ip_range or [])},
        "Internal": bool(opts.internal), "Attachable": bool(opts.attachable), "Ingress": False, "ConfigOnly": False,
        "ConfigFrom": None, "Options": key_values(opts.opt, "option"), "Labels": key_values(opts.label, "label"),
        "Name": args[0]})
    created = cli.client.post("/networks/create", body=body)
    sys.stdout.write(created["Id"] + "\n")
    return 0


LS_SPEC = Spec("network ls", "orlop network ls [OPTIONS]", "List networks", [
    flag("-f, --filter", "list", "Provide filter values (e.g. \"driver=bridge\")", metavar="filter"),
    flag("--format", "string", "Format output using a custom template"),
    flag("--no-trunc", "bool", "Do not truncate the output"),
    flag("-q, --quiet", "bool", "Only display network IDs"),
], max_args=0, aliases="orlop network ls, orlop network list")


@command(LS_SPEC)
def ls(cli, opts, args):
    from orlop.cli.commands.images import filters_json

    networks = sorted(cli.client.get("/networks", {"filters": filters_json(opts.filter)}) or [],
                      key=lambda n: n["Name"])

    def short(nid: str) -> str:
        return nid if opts.no_trunc else nid[:12]
    if opts.quiet:
        sys.stdout.write("".join(short(n["Id"]) + "\n" for n in networks))
        return 0
    rows = [{"ID": short(n["Id"]), "Name": n["Name"], "Driver": n.get("Driver", ""), "Scope": n.get("Scope", ""),
             "IPv6": str(bool(n.get("EnableIPv6"))).lower(), "Internal": str(bool(n.get("Internal"))).lower(),
             "Labels": ",".join(f"{k}={v}" for k, v in sorted((n.get("Labels") or {}).items())),
             "CreatedAt": n.get("Created", "")} for n in networks]
    fmt = Format(opts.format or "", "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}", NETWORK_HEADERS)
    sys.stdout.write(fmt.render(rows))
    return 0


INSPECT_SPEC = Spec("network inspect", "orlop network inspect [OPTIONS] NETWORK [NETWORK...]",
                    "Display detailed information on one or more networks", [
                        flag("-f, --format", "string", "Format output using a custom template"),
                    ], min_args=1)


@command(INSPECT_SPEC)
def inspect(cli, opts, args):
    from orlop.cli.commands.system import inspect_kind

    return inspect_kind(cli, args, "network", opts.format)


RM_SPEC = Spec("network rm", "orlop network rm NETWORK [NETWORK...]", "Remove one or more networks", [
    flag("-f, --force", "bool", "Do not error if the network does not exist"),
], min_args=1, aliases="orlop network rm, orlop network remove")


@command(RM_SPEC)
def rm(cli, opts, args):
    from orlop.cli.client import APIError

    errors = []
    for name in args:
        try:
            cli.client.call("DELETE", f"/networks/{name}")
        except APIError as e:
            if not (opts.force and e.status == 404):
                errors.append(e.message)
            continue
        sys.stdout.write(name + "\n")
    return report_errors(errors)


CONNECT_SPEC = Spec("network connect", "orlop network connect [OPTIONS] NETWORK CONTAINER",
                    "Connect a container to a network", [
                        flag("--alias", "list", "Add network-scoped alias for the container"),
                        flag("--ip", "string", "IPv4 address (e.g., \"172.30.100.104\")"),
                        flag("--ip6", "string", "IPv6 address (e.g., \"2001:db8::33\")"),
                    ], min_args=2, max_args=2)


@command(CONNECT_SPEC)
def connect(cli, opts, args):
    endpoint: dict = {"Aliases": opts.alias or None}
    if opts.ip or opts.ip6:
        endpoint["IPAMConfig"] = {"IPv4Address": opts.ip or "", "IPv6Address": opts.ip6 or ""}
    cli.client.post(f"/networks/{args[0]}/connect", body={"Container": args[1], "EndpointConfig": endpoint})
    return 0


DISCONNECT_SPEC = Spec("network disconnect", "orlop network disconnect [OPTIONS] NETWORK CONTAINER",
                       "Disconnect a container from a network", [
                           flag("-f, --force", "bool", "Force the container to disconnect from a network"),
                       ], min_args=2, max_args=2)


@command(DISCONNECT_SPEC)
def disconnect(cli, opts, args):
    cli.client.post(f"/networks/{args[0]}/disconnect", body={"Container": args[1], "Force": bool(opts.force)})
    return 0


PRUNE_SPEC = Spec("network prune", "orlop network prune [OPTIONS]", "Remove all unused networks", [
    flag("--filter", "list", "Provide filter values (e.g. \"until=<timestamp>\")", metavar="filter"),
    flag("-f, --force", "bool", "Do not prompt for confirmation"),
], max_args=0)


@command(PRUNE_SPEC)
def prune(cli, opts, args):
    from orlop.cli.commands.images import confirm, filters_json

    if not opts.force and not confirm("WARNING! This will remove all custom networks not used by at least one "
                                      "container.\nAre you sure you want to continue?"):
        return 0
    result = cli.client.post("/networks/prune", {"filters": filters_json(opts.filter)}) or {}
    deleted = result.get("NetworksDeleted") or []
    if deleted:
        sys.stdout.write("Deleted Networks:\n" + "".join(name + "\n" for name in deleted))
    return 0
