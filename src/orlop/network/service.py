"""orlopd's networks: the predefined `bridge` (orlop0), `host` and `none`, user-defined
bridge networks, and the endpoints that join containers to them.

A container's start goes: `plan` (lease an address on each of its networks, before its
/etc files are written), the runtime creates the container (its network namespace
exists), `connect` (veth pairs, published ports), the runtime starts it. Its exit
`release`s all of it. Everything the kernel holds (bridges, veths, the nftables table) is
derived from the records and reconciled at every daemon start, so a crash leaves nothing
that the next start does not remove or take over.

A network created with IPv6 (`--ipv6`) is dual-stack: besides its IPv4 subnet it has an
IPv6 one (the request's, or a /64 of the engine's ULA prefix), the bridge holds both
gateways, each container an address of both, and the nftables `ip6 orlop` table does for
IPv6 what `ip orlop` does for IPv4. IPv6-only networks (`EnableIPv4: false`) come with API
1.48, which dockerd ignores below: so does orlopd, serving 1.45.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import secrets
import socket
import time
import uuid

from orlop.errors import Conflict, Forbidden, InvalidParameter, NotFound, OrlopError
from orlop.fsutil import write_atomic
from orlop.network import links, nft
from orlop.network.dns import NetworkDNS, host_resolvers
from orlop.network.ipam import IPAM, family_of, mac_for, ula_base

log = logging.getLogger("orlopd")
DEFAULT_BRIDGE = "orlop0"
PREDEFINED = ("bridge", "host", "none")
ENABLE_IPV6_OPTION = "com.docker.network.enable_ipv6"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + ".000000000Z"


class NetworkService:
    def __init__(self, data_root: str, exec_root: str, bip: str | None = None) -> None:
        self.root = os.path.join(data_root, "network")
        os.makedirs(self.root, 0o700, exist_ok=True)
        self.path = os.path.join(self.root, "networks.json")
        self.ipam = IPAM(os.path.join(self.root, "ipam.json"), ula=ula_base(engine_id(data_root)))
        self.forwarding_marker = os.path.join(exec_root, "network-forwarding-enabled")
        self.forwarding6_marker = os.path.join(exec_root, "network-forwarding6-enabled")
        self.bip = bip
        self.networks: dict[str, dict] = {}
        self.dns: dict[str, NetworkDNS] = {}
        self.reservations: dict[tuple[str, str, str, int], socket.socket] = {}  # (cid, proto, host ip, port)
        self.containers = None  # the ContainerService, for names and running endpoints (set by the daemon)
        try:
            with open(self.path) as f:
                self.networks = json.load(f)
        except FileNotFoundError:
            pass

    # -- records ---------------------------------------------------------------------------------
    def _save(self) -> None:
        write_atomic(self.path, json.dumps(self.networks, indent=1).encode())

    def get(self, ref: str) -> dict:
        """By full id, name, or id prefix (Docker's order)."""
        if ref in self.networks:
            return self.networks[ref]
        for net in self.networks.values():
            if net["Name"] == ref:
                return net
        found = [n for i, n in self.networks.items() if i.startswith(ref)] if ref else []
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise InvalidParameter(f"network {ref} is ambiguous ({len(found)} matches found based on ID prefix)")
        raise NotFound(f"network {ref} not found")

    async def prepare(self) -> None:
        """Before containers are restored: the predefined networks exist."""
        await asyncio.to_thread(self._ensure_predefined)

    def _ensure_predefined(self) -> None:  # netlink: not on the event loop's thread (pyroute2 runs its own loop)
        names = {n["Name"] for n in self.networks.values()}
        for name, driver in (("bridge", "bridge"), ("host", "host"), ("none", "null")):
            if name in names:
                continue
            nid = secrets.token_hex(32)
            record = self._record(nid, name, driver, internal=False, labels={}, options={})
            if name == "bridge":
                subnet, gateway = None, None
                if self.bip:
                    iface = ipaddress.ip_interface(self.bip)
                    subnet, gateway = str(iface.network), str(iface.ip)
                subnet, gateway = self.ipam.add_pool(nid, subnet, gateway, links.host_routes())
                record["IPAM"]["Config"] = [{"Subnet": subnet, "Gateway": gateway}]
                record["Options"] = {"com.docker.network.bridge.name": DEFAULT_BRIDGE,
                                     "com.docker.network.bridge.default_bridge": "true"}
            self.networks[nid] = record
        self._save()

    @staticmethod
    def _record(nid: str, name: str, driver: str, internal: bool, labels: dict, options: dict) -> dict:
        return {"Name": name, "Id": nid, "Created": _now(), "Scope": "local", "Driver": driver, "EnableIPv6": False,
                "IPAM": {"Driver": "default", "Options": {}, "Config": []}, "Internal": internal,
                "Attachable": False, "Ingress": False, "ConfigFrom": {"Network": ""}, "ConfigOnly": False,
                "Options": options, "Labels": labels}

    @staticmethod
    def bridge_name(net: dict) -> str:
        return net["Options"].get("com.docker.network.bridge.name") or "orl-" + net["Id"][:11]

    # -- networks --------------------------------------------------------------------------------
    async def create(self, body: dict) -> dict:
        name = body.get("Name")
        if not name or not isinstance(name, str):
            raise InvalidParameter("network name is required")
        if name in PREDEFINED:
            raise Forbidden(f"operation is not permitted on predefined {name} network")
        if any(n["Name"] == name for n in self.networks.values()):
            raise Conflict(f"network with name {name} already exists")
        driver = body.get("Driver") or "bridge"
        if driver != "bridge":
            raise InvalidParameter(f"plugin \"{driver}\" not found: orlop networks use the bridge driver")
        options = dict(body.get("Options") or {})
        enable_ipv6 = _enable_ipv6(body, options)
        wanted = _configs_by_family(body, enable_ipv6)
        nid = secrets.token_hex(32)
        record = self._record(nid, name, "bridge", bool(body.get("Internal")), dict(body.get("Labels") or {}),
                              options)
        record["EnableIPv6"] = enable_ipv6
        routes = await asyncio.to_thread(links.host_routes)
        try:
            for family in (4, 6) if enable_ipv6 else (4,):
                config = wanted.get(family, {})
                subnet, gateway = self.ipam.add_pool(nid, config.get("Subnet"), config.get("Gateway"), routes,
                                                     family=family)
                record["IPAM"]["Config"].append({"Subnet": subnet, "Gateway": gateway})
            await asyncio.to_thread(self._bring_up, record)
        except (links.LinkError, OSError) as e:
            self.ipam.remove_pool(nid)
            await asyncio.to_thread(links.delete_link, self.bridge_name(record))
            raise OrlopError(f"cannot create network {name}: {e}") from None
        except OrlopError:
            self.ipam.remove_pool(nid)
            raise
        self.networks[nid] = record
        self._save()
        await self._start_dns(record)
        await self.apply_rules()
        return record

    def _bring_up(self, net: dict) -> None:
        config, config6 = ipam_config(net, 4), ipam_config(net, 6)
        links.ensure_bridge(self.bridge_name(net), config["Gateway"], ipaddress.ip_network(config["Subnet"]).prefixlen,
                            config6["Gateway"] if config6 else None,
                            ipaddress.ip_network(config6["Subnet"]).prefixlen if config6 else 0)
        if config6:
            self._ipv6_forwarding()

    def _ipv6_forwarding(self) -> None:
        """IPv6 forwarding on, as dockerd turns it on for its first IPv6 network; if it was
        off, orlop's ip6 table then forwards nothing but its own networks' traffic."""
        if not os.path.exists("/proc/sys/net/ipv6/conf/all/forwarding"):
            return
        changed = links.sysctl("net/ipv6/conf/default/forwarding", "1") == "0"
        changed = links.sysctl("net/ipv6/conf/all/forwarding", "1") == "0" or changed
        if changed:
            write_atomic(self.forwarding6_marker, b"orlopd turned IPv6 forwarding on\n")

    async def remove(self, ref: str) -> None:
        net = self.get(ref)
        if net["Name"] in PREDEFINED:
            raise InvalidParameter(f"{net['Name']} is a pre-defined network and cannot be removed")
        users = self.endpoints(net["Id"])
        if users:
            raise Conflict(f"error while removing network: network {net['Name']} id {net['Id']} has active "
                           "endpoints")
        dns = self.dns.pop(net["Id"], None)
        if dns:
            dns.stop()
        del self.networks[net["Id"]]
        self._save()
        await self.apply_rules()
        await asyncio.to_thread(links.delete_link, self.bridge_name(net))
        self.ipam.remove_pool(net["Id"])

    def endpoints(self, nid: str) -> dict[str, dict]:
        """{container id: {Name, EndpointID, MacAddress, IPv4Address, IPv6Address}} of running members."""
        out = {}
        for record in self._running():
            for ep in (record["NetworkSettings"].get("Networks") or {}).values():
                if ep.get("NetworkID") == nid and ep.get("IPAddress"):
                    v6 = f"{ep['GlobalIPv6Address']}/{ep['GlobalIPv6PrefixLen']}" if ep.get("GlobalIPv6Address") \
                        else ""
                    out[record["Id"]] = {"Name": record["Name"].lstrip("/"), "EndpointID": ep["EndpointID"],
                                         "MacAddress": ep["MacAddress"],
                                         "IPv4Address": f"{ep['IPAddress']}/{ep['IPPrefixLen']}", "IPv6Address": v6}
        return out

    def _running(self) -> list[dict]:
        if self.containers is None:
            return []
        return [r for r in self.containers.store.records.values() if r["State"]["Running"]]

    def inspect(self, ref: str) -> dict:
        net = dict(self.get(ref))
        net["Containers"] = self.endpoints(net["Id"])
        return net

    # -- a container's endpoints ---------------------------------------------------------------
    def requested(self, host_config: dict, networking_config: dict | None) -> dict[str, dict]:
        """The create request's networks as NetworkSettings.Networks entries (not yet connected)."""
        mode = host_config.get("NetworkMode") or "bridge"
        if mode in ("host", "none") or mode.startswith("container:"):
            return {}
        try:
            net = self.get(mode)
        except NotFound as e:  # a 400, as dockerd answers: a 404 makes the docker CLI pull the image
            raise InvalidParameter(str(e)) from None
        if net["Driver"] != "bridge":
            raise InvalidParameter(f"container cannot be connected to network {mode}")
        endpoints = (networking_config or {}).get("EndpointsConfig") or {}
        wanted = endpoints.get(mode) or endpoints.get(net["Name"]) or endpoints.get(net["Id"]) or \
            (endpoints.get("default") if net["Name"] == "bridge" else None) or {}
        if net["Name"] == "bridge" and wanted.get("Aliases"):
            raise InvalidParameter("network-scoped alias is supported only for containers in user defined networks")
        self._check_static_addresses(net, wanted, mode)
        return {net["Name"]: self._endpoint_settings(net, wanted)}

    def _check_static_addresses(self, net: dict, wanted: dict, name: str) -> None:
        """--ip/--ip6 (IPAMConfig), checked as dockerd checks an endpoint's settings."""
        ipam = wanted.get("IPAMConfig") or {}
        errors = []
        for family, key in ((4, "IPv4Address"), (6, "IPv6Address")):
            text = ipam.get(key) or ""
            if not text:
                continue
            try:
                address = ipaddress.ip_address(text)
            except ValueError:
                address = None
            if address is None or address.version != family or address.is_unspecified:
                errors.append(f"invalid IPv{family} address: {text}")
                continue
            if net["Name"] in PREDEFINED:
                errors.append("user specified IP address is supported on user defined networks only")
                continue
            space = self.ipam.space(net["Id"], family)
            if space is None or not space.get("static", True):
                errors.append("user specified IP address is supported only when connecting to networks with user "
                              "configured subnets")
            elif address not in ipaddress.ip_network(space["subnet"]):
                errors.append(f"no configured subnet or ip-range contain the IP address {text}")
        if errors:
            joined = errors[0] if len(errors) == 1 else "* " + "\n* ".join(errors)
            raise InvalidParameter(f"invalid config for network {name}: invalid endpoint settings:\n{joined}")

    @staticmethod
    def _endpoint_settings(net: dict, wanted: dict) -> dict:
        return {"IPAMConfig": wanted.get("IPAMConfig"), "Links": None, "Aliases": wanted.get("Aliases"),
                "MacAddress": checked_mac(wanted.get("MacAddress")), "DriverOpts": None, "NetworkID": net["Id"], "EndpointID": "", "Gateway": "",
                "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "", "GlobalIPv6Address": "",
                "GlobalIPv6PrefixLen": 0, "DNSNames": None}

    def plan(self, record: dict) -> None:
        """Lease an address on each of the container's networks (filled into its record)."""
        for name, ep in (record["NetworkSettings"].get("Networks") or {}).items():
            net = self.get(ep["NetworkID"] if ep.get("NetworkID") in self.networks else name)
            self._lease(record, net, ep)
        self._summarise(record)

    def _lease(self, record: dict, net: dict, ep: dict) -> None:
        ep["EndpointID"] = ep.get("EndpointID") or secrets.token_hex(32)
        wanted = ep.get("IPAMConfig") or {}
        address = self.ipam.lease(net["Id"], ep["EndpointID"], wanted.get("IPv4Address") or None)
        config = ipam_config(net, 4)
        ep.update(NetworkID=net["Id"], IPAddress=address, Gateway=config["Gateway"],
                  IPPrefixLen=ipaddress.ip_network(config["Subnet"]).prefixlen,
                  MacAddress=desired_macs(record).get(net["Name"]) or mac_for(address))
        config6 = ipam_config(net, 6)
        if config6:
            address6 = self.ipam.lease(net["Id"], ep["EndpointID"], wanted.get("IPv6Address") or None, family=6)
            # dockerd gives an internal network's endpoints no gateway (and so no default route)
            ep.update(GlobalIPv6Address=address6, GlobalIPv6PrefixLen=ipaddress.ip_network(config6["Subnet"]).prefixlen,
                      IPv6Gateway="" if net["Internal"] else config6["Gateway"])
        if net["Name"] != "bridge":
            ep["DNSNames"] = [record["Name"].lstrip("/"), record["Id"][:12], *(ep.get("Aliases") or [])]

    @staticmethod
    def _summarise(record: dict) -> None:
        """The top-level NetworkSettings fields (those of the default bridge, as Docker's)."""
        settings = record["NetworkSettings"]
        bridge = (settings.get("Networks") or {}).get("bridge") or {}
        settings.update(IPAddress=bridge.get("IPAddress", ""), Gateway=bridge.get("Gateway", ""),
                        MacAddress=bridge.get("MacAddress", ""), IPPrefixLen=bridge.get("IPPrefixLen", 0),
                        GlobalIPv6Address=bridge.get("GlobalIPv6Address", ""),
                        GlobalIPv6PrefixLen=bridge.get("GlobalIPv6PrefixLen", 0),
                        IPv6Gateway=bridge.get("IPv6Gateway", ""), Bridge=DEFAULT_BRIDGE if bridge else "")

    def resolv_conf_nameservers(self, record: dict) -> list[str] | None:
        """A user-defined network's DNS server (the first such network's gateway), else None."""
        for name, ep in (record["NetworkSettings"].get("Networks") or {}).items():
            if name != "bridge" and ep.get("Gateway"):
                return [ep["Gateway"]]
        return None

    def own_addresses(self, record: dict) -> list[str]:
        """The container's addresses on its networks (IPv4, then IPv6, per network)."""
        return [address for ep in (record["NetworkSettings"].get("Networks") or {}).values()
                for address in (ep.get("IPAddress"), ep.get("GlobalIPv6Address")) if address]

    async def connect(self, record: dict, pid: int) -> None:
        """After the runtime's create: veths into the container's namespace, ports published."""
        netns = f"/proc/{pid}/ns/net"
        mode = record["HostConfig"].get("NetworkMode") or "bridge"
        record["NetworkSettings"]["SandboxKey"] = netns
        if mode == "none":
            await asyncio.to_thread(links.loopback_up, netns)
            return
        for ep in (record["NetworkSettings"].get("Networks") or {}).values():
            await self._connect_endpoint(netns, self.get(ep["NetworkID"]), ep)
        await self._publish(record)

    async def _connect_endpoint(self, netns: str, net: dict, ep: dict) -> None:
        existing = await asyncio.to_thread(links.interfaces, netns)
        ifname = f"eth{sum(1 for i in existing if (i['ifname'] or '').startswith('eth'))}"
        await asyncio.to_thread(self._bring_up, net)
        # An internal network gets no default route: nothing beyond its bridge is reachable.
        await asyncio.to_thread(links.connect, netns, self.bridge_name(net), links.host_veth_name(ep["EndpointID"]),
                                ifname, ep["IPAddress"], ep["IPPrefixLen"], ep["Gateway"], ep["MacAddress"],
                                ifname == "eth0" and not net["Internal"], ep.get("GlobalIPv6Address") or None,
                                ep.get("GlobalIPv6PrefixLen") or 0, ep.get("IPv6Gateway") or None)

    async def release(self, record: dict) -> None:
        """The container stopped: its addresses, veths and published ports go."""
        for name, ep in (record["NetworkSettings"].get("Networks") or {}).items():
            if ep.get("EndpointID"):
                await asyncio.to_thread(links.delete_link, links.host_veth_name(ep["EndpointID"]))
                try:
                    self.ipam.release(ep["NetworkID"], ep["EndpointID"])
                except OSError as e:  # a full disk: released here, saved with the next change
                    log.error("the release of %s's address is not saved: %s", record["Id"][:12], e)
            ep.update(EndpointID="", IPAddress="", Gateway="", IPPrefixLen=0, DNSNames=None, GlobalIPv6Address="",
                      GlobalIPv6PrefixLen=0, IPv6Gateway="", MacAddress=desired_macs(record).get(name, ""))
        self._summarise(record)
        record["NetworkSettings"]["Ports"] = {}
        record["NetworkSettings"]["SandboxKey"] = ""
        self._unreserve(record["Id"])
        await self.apply_rules()

    # -- connect / disconnect of a (running or not) container ----------------------------------
    async def connect_container(self, record: dict, ref: str, endpoint_config: dict | None) -> None:
        net = self.get(ref)
        mode = record["HostConfig"].get("NetworkMode") or "bridge"
        if mode in ("host", "none") or mode.startswith("container:"):
            raise InvalidParameter(f"container sharing network namespace with another container or host cannot "
                                   f"be connected to any other network (its mode is {mode})")
        if net["Driver"] != "bridge":
            raise InvalidParameter(f"container cannot be disconnected from host network or connected to "
                                   f"{net['Name']} network")
        networks = record["NetworkSettings"].setdefault("Networks", {})
        if net["Name"] in networks:
            raise Conflict(f"endpoint with name {record['Name'].lstrip('/')} already exists in network "
                           f"{net['Name']}")
        self._check_static_addresses(net, endpoint_config or {}, net["Name"])
        ep = self._endpoint_settings(net, endpoint_config or {})
        if ep["MacAddress"]:
            desired_macs(record)[net["Name"]] = ep["MacAddress"]
        networks[net["Name"]] = ep
        if record["State"]["Running"]:
            try:
                self._lease(record, net, ep)
                await self._connect_endpoint(f"/proc/{record['State']['Pid']}/ns/net", net, ep)
            except (OrlopError, links.LinkError) as e:
                if ep.get("EndpointID"):
                    self.ipam.release(net["Id"], ep["EndpointID"])
                del networks[net["Name"]]
                raise OrlopError(str(e)) from None
            self._summarise(record)
            await self.apply_rules()

    async def disconnect_container(self, record: dict, ref: str, force: bool = False) -> None:
        net = self.get(ref)
        networks = record["NetworkSettings"].get("Networks") or {}
        ep = networks.get(net["Name"])
        if ep is None:
            raise InvalidParameter(f"container {record['Id'][:12]} is not connected to network {net['Name']}")
        if ep.get("EndpointID"):
            await asyncio.to_thread(links.delete_link, links.host_veth_name(ep["EndpointID"]))
            self.ipam.release(net["Id"], ep["EndpointID"])
        del networks[net["Name"]]
        self._summarise(record)
        await self.apply_rules()

    # -- published ports -------------------------------------------------------------------------
    async def _publish(self, record: dict) -> None:
        hc = record["HostConfig"]
        bindings = dict(hc.get("PortBindings") or {})
        if hc.get("PublishAllPorts"):
            for port in record["Config"].get("ExposedPorts") or {}:
                bindings.setdefault(port, [{"HostIp": "", "HostPort": ""}])
        ports: dict[str, list | None] = {p: None for p in record["Config"].get("ExposedPorts") or {}}
        has_ipv6 = bool(_gateway_endpoint(record, "GlobalIPv6Address"))
        for port, entries in bindings.items():
            number, _, proto = port.partition("/")
            proto = proto or "tcp"
            published = []
            for entry in entries or [{}]:
                # No host address: 0.0.0.0, and :: too for a container with IPv6, on one port
                # (dockerd's default binding; without its userland proxy, as here, an IPv4-only
                # container is not published on ::, nor on an IPv6 address given explicitly).
                given = entry.get("HostIp") or ""
                host_ips = [given] if given else ["0.0.0.0", "::"] if has_ipv6 else ["0.0.0.0"]
                host_ips = [ip for ip in host_ips if family_of(ip) == 4 or has_ipv6]
                reserved = self._reserve_same(record["Id"], proto, host_ips, entry.get("HostPort") or "")
                for host_ip, host_port in zip(host_ips, reserved, strict=True):
                    published.append({"HostIp": host_ip, "HostPort": str(host_port)})
            ports[f"{number}/{proto}"] = published
        record["NetworkSettings"]["Ports"] = ports

    def _reserve_same(self, cid: str, proto: str, host_ips: list[str], wanted: str) -> list[int]:
        """One port for all of `host_ips`: the one wanted, or one free on each (a random
        port free on the first address may be taken on the next: then another is tried)."""
        for _ in range(1 if wanted or len(host_ips) < 2 else 20):
            ports: list[int] = []
            try:
                for host_ip in host_ips:
                    ports.append(self._reserve(cid, proto, host_ip, wanted or (str(ports[0]) if ports else "")))
                return ports
            except OrlopError:
                for port in ports:
                    self._unreserve_one(cid, proto, port, host_ips)
                if wanted or not ports:
                    raise
        raise OrlopError(f"driver failed programming external connectivity: no {proto} port free on both "
                         f"{' and '.join(host_ips)}")

    def _reserve(self, cid: str, proto: str, host_ip: str, wanted: str) -> int:
        """Bind (not listen) the host port, so that no other program takes it while published."""
        kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
        ipv6 = family_of(host_ip) == 6
        sock = socket.socket(socket.AF_INET6 if ipv6 else socket.AF_INET, kind)  # no SO_REUSEADDR: a second bind must fail
        try:
            if ipv6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)  # :: is not also 0.0.0.0
            sock.bind((host_ip, int(wanted) if wanted else 0))
        except (OSError, ValueError) as e:
            sock.close()
            shown = f"[{host_ip}]" if ipv6 else host_ip
            raise OrlopError(f"driver failed programming external connectivity: Bind for {shown}:{wanted or 0} "
                             f"failed: port is already allocated ({getattr(e, 'strerror', e)})") from None
        port = sock.getsockname()[1]
        self.reservations[(cid, proto, host_ip, port)] = sock
        return port

    def _unreserve_one(self, cid: str, proto: str, port: int, host_ips: list[str]) -> None:
        for host_ip in host_ips:
            sock = self.reservations.pop((cid, proto, host_ip, port), None)
            if sock is not None:
                sock.close()

    def _unreserve(self, cid: str) -> None:
        for key in [k for k in self.reservations if k[0] == cid]:
            self.reservations.pop(key).close()

    def _published(self) -> list[nft.Publish]:
        out = []
        for record in self._running():
            addresses = {4: _gateway_endpoint(record, "IPAddress"), 6: _gateway_endpoint(record, "GlobalIPv6Address")}
            for port, entries in (record["NetworkSettings"].get("Ports") or {}).items():
                number, _, proto = port.partition("/")
                for entry in entries or []:
                    address = addresses[family_of(entry["HostIp"])]
                    if address:
                        out.append(nft.Publish(proto, entry["HostIp"], int(entry["HostPort"]), address, int(number)))
        return out

    # -- the kernel's state, from the records --------------------------------------------------
    async def apply_rules(self) -> None:
        bridges = [nft.Bridge(self.bridge_name(n), ipam_config(n, 4)["Subnet"], n["Internal"],
                              (ipam_config(n, 6) or {}).get("Subnet", ""))
                   for n in self.networks.values() if n["Driver"] == "bridge"]
        limit, limit6 = os.path.exists(self.forwarding_marker), os.path.exists(self.forwarding6_marker)
        await asyncio.to_thread(nft.apply, nft.ruleset(bridges, self._published(), limit, limit6))

    async def start(self) -> None:
        """At daemon start: predefined networks, bridges up, forwarding on, stale veths and
        leases of containers that are not running dropped, rules and DNS servers in place."""
        for net in self.networks.values():
            if net["Driver"] == "bridge":
                await asyncio.to_thread(self._bring_up, net)
        if links.sysctl("net/ipv4/ip_forward", "1") == "0":
            write_atomic(self.forwarding_marker, b"orlopd turned IPv4 forwarding on\n")
        live = {ep["EndpointID"] for r in self._running()
                for ep in (r["NetworkSettings"].get("Networks") or {}).values() if ep.get("EndpointID")}
        for name in await asyncio.to_thread(links.links_with_prefix, links.VETH_PREFIX):
            if not any(links.host_veth_name(e) == name for e in live):
                if await asyncio.to_thread(self._is_orlop_veth, name):
                    await asyncio.to_thread(links.delete_link, name)
        for nid in list(self.ipam.pools):
            for owner in self.ipam.owners(nid) - live:
                self.ipam.release(nid, owner)
        for record in self._running():
            for (proto, host_ip, port) in [(p.partition("/")[2] or "tcp", e["HostIp"], int(e["HostPort"]))
                                           for p, es in (record["NetworkSettings"].get("Ports") or {}).items()
                                           for e in es or []]:
                with contextlib.suppress(OrlopError):
                    self._reserve(record["Id"], proto, host_ip, str(port))
        for net in self.networks.values():
            await self._start_dns(net)
        await self.apply_rules()

    def _is_orlop_veth(self, name: str) -> bool:
        """A veth enslaved to one of our bridges (never touch anybody else's)."""
        ours = {self.bridge_name(n) for n in self.networks.values() if n["Driver"] == "bridge"}
        try:
            with open(f"/sys/class/net/{name}/master/uevent") as f:
                master = next((line.split("=", 1)[1].strip() for line in f if line.startswith("INTERFACE=")), "")
        except OSError:
            return False
        return master in ours

    async def _start_dns(self, net: dict) -> None:
        if net["Driver"] != "bridge" or net["Name"] == "bridge" or net["Id"] in self.dns:
            return
        server = NetworkDNS(ipam_config(net, 4)["Gateway"], lambda name, nid=net["Id"]: self.resolve(nid, name))
        await server.start()
        self.dns[net["Id"]] = server

    def resolve(self, nid: str, name: str) -> list[str]:
        """Addresses (IPv4 and IPv6) of a container name, alias or short id on a network."""
        name = name.lower()
        found = []
        for record in self._running():
            for ep in (record["NetworkSettings"].get("Networks") or {}).values():
                if ep.get("NetworkID") == nid and ep.get("IPAddress") and \
                        name in [n.lower() for n in ep.get("DNSNames") or []]:
                    found += [a for a in (ep["IPAddress"], ep.get("GlobalIPv6Address")) if a]
        return found

    async def shutdown(self) -> None:
        for server in self.dns.values():
            server.stop()
        self.dns.clear()
        for sock in self.reservations.values():
            sock.close()
        self.reservations.clear()


def ipam_config(net: dict, family: int) -> dict | None:
    """The network's IPAM config entry of `family` (4 or 6), None if it has none."""
    return next((c for c in net["IPAM"]["Config"] if family_of(c["Subnet"]) == family), None)


def _gateway_endpoint(record: dict, field: str) -> str:
    """The address (`IPAddress` or `GlobalIPv6Address`) through which the container's ports
    are published: that of its first network having one."""
    return next((ep[field] for ep in (record["NetworkSettings"].get("Networks") or {}).values() if ep.get(field)), "")


def _enable_ipv6(body: dict, options: dict) -> bool:
    """EnableIPv6, else dockerd's driver option for it (which EnableIPv6, when given,
    overrides and takes out of Options, as dockerd does)."""
    value = body.get("EnableIPv6")
    if value is not None:
        options.pop(ENABLE_IPV6_OPTION, None)
        return bool(value)
    option = str(options.get(ENABLE_IPV6_OPTION, "false")).lower()
    if option not in ("1", "t", "true", "0", "f", "false"):
        raise InvalidParameter(f"driver-opt \"{ENABLE_IPV6_OPTION}\" is not a valid bool")
    return option in ("1", "t", "true")


def _configs_by_family(body: dict, enable_ipv6: bool) -> dict[int, dict]:
    """The request's IPAM configs, at most one per family, checked as dockerd checks them."""
    found: dict[int, dict] = {}
    for config in (body.get("IPAM") or {}).get("Config") or []:
        subnet = config.get("Subnet") or ""
        try:
            family = ipaddress.ip_network(subnet, strict=False).version
        except ValueError:
            raise InvalidParameter(f"invalid network config:\ninvalid subnet {subnet}: invalid CIDR block notation"
                                   ) from None
        if family == 6 and not enable_ipv6:
            raise InvalidParameter(f"invalid network config: subnet {subnet} is IPv6, and IPv6 is not enabled on "
                                   f"the network (docker network create --ipv6)")
        if family in found:
            raise Forbidden("bridge driver doesn't support multiple subnets")
        found[family] = config
    return found


def engine_id(data_root: str) -> str:
    """This engine's id (dockerd's `engine-id` file): made once, kept in the data root."""
    path = os.path.join(data_root, "engine-id")
    with contextlib.suppress(FileNotFoundError), open(path) as f:
        found = f.read().strip()
        if found:
            return found
    made = str(uuid.uuid4())
    os.makedirs(data_root, 0o711, exist_ok=True)
    write_atomic(path, made.encode(), mode=0o600)
    return made


def default_resolvers() -> list[str]:
    """The host's resolvers a container on the default bridge can use (not 127.x)."""
    return [ip for ip in host_resolvers() if not ip.startswith("127.")] or ["8.8.8.8", "8.8.4.4"]


def checked_mac(text: str | None) -> str:
    """A requested MAC address (--mac-address), checked; "" when none is asked for."""
    if not text:
        return ""
    parts = text.split(":")
    if len(parts) != 6 or not all(len(p) == 2 and all(c in "0123456789abcdefABCDEF" for c in p) for p in parts):
        raise InvalidParameter(f"invalid MAC address: {text}")
    return text.lower()


def desired_macs(record: dict) -> dict[str, str]:
    """The MAC addresses asked for, by network name: kept over restarts, where the
    endpoint's own MacAddress is that of the running container."""
    return record["Orlop"].setdefault("MacAddresses", {})
