"""The kernel's side of a bridge network, over netlink (pyroute2): the bridge with its
gateway address, and per container a veth pair whose host end joins the bridge and whose
other end becomes `eth0` in the container's network namespace, with its address, MAC and
default route. On an IPv6 network both ends also get their IPv6 address (without duplicate
address detection, as dockerd adds them: the addresses are leased, nobody else has them);
on an IPv4-only one IPv6 is turned off on the container's interface, as dockerd 28 does, so
that it joins no IPv6 multicast group and takes no router advertisement.

Host-end names are derived from the endpoint id (`veth` + 7 hex), so that what a crash
leaves behind can be recognised and removed at the next start.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from orlop.linux import syscalls

VETH_PREFIX = "veth"
IFA_F_NODAD = 0x02
LINK_LOCAL = ipaddress.ip_network("fe80::/64")


class LinkError(RuntimeError):
    pass


def host_veth_name(endpoint_id: str) -> str:
    return VETH_PREFIX + endpoint_id[:7]


def sysctl(path: str, value: str) -> str:
    """Set /proc/sys/<path>; returns the previous value."""
    full = os.path.join("/proc/sys", path)
    with open(full) as f:
        previous = f.read().strip()
    if previous != value:
        with open(full, "w") as f:
            f.write(value)
    return previous


def ensure_bridge(name: str, gateway: str, prefixlen: int, gateway6: str | None = None, prefixlen6: int = 0) -> None:
    """The bridge, up, holding the gateway address(es) (created, or repaired, as needed)."""
    with IPRoute() as ip:
        found = ip.link_lookup(ifname=name)
        if not found:
            try:
                ip.link("add", ifname=name, kind="bridge")
            except NetlinkError as e:
                raise LinkError(f"cannot create bridge {name}: {e.args[-1]}") from None
            found = ip.link_lookup(ifname=name)
        index = found[0]
        addresses = {(a.get_attr("IFA_ADDRESS"), a["prefixlen"]) for a in ip.get_addr(index=index, family=2)}
        if (gateway, prefixlen) not in addresses:
            ip.addr("add", index=index, address=gateway, prefixlen=prefixlen)
        if os.path.exists(f"/proc/sys/net/ipv6/conf/{name}"):
            sysctl(f"net/ipv6/conf/{name}/accept_ra", "0")  # the bridge is a router, never a host taking RAs
            if gateway6:
                sysctl(f"net/ipv6/conf/{name}/disable_ipv6", "0")
                _own_ipv6_address(ip, index, gateway6, prefixlen6)
        ip.link("set", index=index, state="up")
    sysctl(f"net/ipv4/conf/{name}/route_localnet", "1")  # published ports reachable via 127.0.0.1


def _own_ipv6_address(ip: IPRoute, index: int, address: str, prefixlen: int) -> None:
    """`address` the interface's only IPv6 address besides the kernel's link-local and
    multicast ones (a gateway changed across a restart leaves nothing behind)."""
    wanted = ipaddress.ip_address(address)
    present = False
    for a in ip.get_addr(index=index, family=socket.AF_INET6):
        existing = ipaddress.ip_address(a.get_attr("IFA_ADDRESS"))
        if existing in LINK_LOCAL or existing.is_multicast:
            continue
        if existing == wanted and a["prefixlen"] == prefixlen:
            present = True
            continue
        with contextlib.suppress(NetlinkError):
            ip.addr("del", index=index, address=str(existing), prefixlen=a["prefixlen"])
    if not present:
        ip.addr("add", index=index, address=address, prefixlen=prefixlen, flags=IFA_F_NODAD)


def delete_link(name: str) -> bool:
    with IPRoute() as ip:
        found = ip.link_lookup(ifname=name)
        if not found:
            return False
        with contextlib.suppress(NetlinkError):
            ip.link("del", index=found[0])
        return True


def links_with_prefix(prefix: str) -> list[str]:
    with IPRoute() as ip:
        return [n for n in (link.get_attr("IFLA_IFNAME") for link in ip.get_links()) if n and n.startswith(prefix)]


def connect(netns_path: str, bridge: str, host_name: str, ifname: str, address: str, prefixlen: int,
            gateway: str | None, mac: str, default_route: bool, address6: str | None = None, prefixlen6: int = 0,
            gateway6: str | None = None) -> None:
    """A veth from the bridge into the namespace at `netns_path`, configured there. With
    `address6`, the interface gets it too and, given `gateway6`, an IPv6 default route
    through it unless the namespace has one already (from another network)."""
    peer_tmp = "orlp" + host_name[len(VETH_PREFIX):]
    with IPRoute() as ip:
        if ip.link_lookup(ifname=host_name):
            delete_link(host_name)  # left by a crash
        bridge_index = ip.link_lookup(ifname=bridge)
        if not bridge_index:
            raise LinkError(f"bridge {bridge} does not exist")
        fd = os.open(netns_path, os.O_RDONLY)
        try:
            ip.link("add", ifname=host_name, kind="veth", peer={"ifname": peer_tmp, "net_ns_fd": fd})
        except NetlinkError as e:
            raise LinkError(f"cannot create veth pair {host_name}: {e.args[-1]}") from None
        finally:
            os.close(fd)
        index = ip.link_lookup(ifname=host_name)[0]
        ip.link("set", index=index, master=bridge_index[0])
        ip.link("set", index=index, state="up")
    try:
        with _netns(netns_path) as ns:
            index = ns.link_lookup(ifname=peer_tmp)[0]
            ns.link("set", index=index, ifname=ifname, address=mac)
            _ipv6_enabled(ifname, address6 is not None)
            ns.addr("add", index=index, address=address, prefixlen=prefixlen)
            if address6:
                ns.addr("add", index=index, address=address6, prefixlen=prefixlen6, flags=IFA_F_NODAD)
            ns.link("set", index=index, state="up")
            lo = ns.link_lookup(ifname="lo")
            if lo:
                ns.link("set", index=lo[0], state="up")
            if default_route and gateway:
                ns.route("add", dst="0.0.0.0/0", gateway=gateway, oif=index)
            if address6 and gateway6 and not _has_default_route6(ns):
                ns.route("add", family=socket.AF_INET6, dst="::/0", gateway=gateway6, oif=index)
    except (NetlinkError, OSError) as e:
        delete_link(host_name)
        raise LinkError(f"cannot configure {ifname} in the container: {e}") from None


def _ipv6_enabled(ifname: str, enabled: bool) -> None:
    """IPv6 on or off for an interface of the namespace this thread is in (/proc/sys/net is
    the opening thread's namespace's); nothing to do on a kernel without IPv6."""
    path = f"/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6"
    if os.path.exists(path):
        with open(path, "w") as f:
            f.write("0" if enabled else "1")


def _has_default_route6(ns: IPRoute) -> bool:
    return any(r["dst_len"] == 0 and r.get_attr("RTA_GATEWAY") for r in ns.get_routes(family=socket.AF_INET6))


def disconnect(netns_path: str | None, host_name: str, ifname: str) -> None:
    """Remove the pair (deleting either end deletes both)."""
    if delete_link(host_name):
        return
    if netns_path and os.path.exists(netns_path):
        with contextlib.suppress(NetlinkError, OSError), _netns(netns_path) as ns:
            found = ns.link_lookup(ifname=ifname)
            if found:
                ns.link("del", index=found[0])


def loopback_up(netns_path: str) -> None:
    with _netns(netns_path) as ns:
        lo = ns.link_lookup(ifname="lo")
        if lo:
            ns.link("set", index=lo[0], state="up")


def interfaces(netns_path: str) -> list[dict]:
    """[{ifname, index, mac, state, mtu, kind, addresses: ["a.b.c.d/nn", "fe80::…/64"]}] of a
    namespace, as `ip -n <ns> addr` shows it (for explain, inspection and tests). Call it off
    the event loop's thread: the calling thread enters the namespace for the duration."""
    out = []
    with _netns(netns_path) as ns:
        addresses: dict[int, list[str]] = {}
        for a in ns.get_addr():
            addresses.setdefault(a["index"], []).append(f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}")
        for link in ns.get_links():
            info = link.get_attr("IFLA_LINKINFO")
            out.append({"ifname": link.get_attr("IFLA_IFNAME"), "index": link["index"],
                        "mac": link.get_attr("IFLA_ADDRESS"), "state": link.get_attr("IFLA_OPERSTATE"),
                        "mtu": link.get_attr("IFLA_MTU"), "kind": info.get_attr("IFLA_INFO_KIND") if info else None,
                        "addresses": addresses.get(link["index"], [])})
    return out


@contextlib.contextmanager
def _netns(path: str):
    """Netlink inside the namespace at `path`: this thread enters it (setns moves only the
    calling thread), opens its netlink socket there, and comes back. (pyroute2's own
    netns support forks a helper process, which a threaded daemon should not do.)"""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    target = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        syscalls.setns(target, syscalls.CLONE_NEWNET, path)
        try:
            with IPRoute() as ns:
                yield ns
        finally:
            syscalls.setns(own, syscalls.CLONE_NEWNET, "/proc/thread-self/ns/net")
    finally:
        os.close(target)
        os.close(own)


def host_routes() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """The host's IPv4 and IPv6 routes' destinations (a new network's subnet must overlap
    none; the kernel's link-local and multicast routes aside)."""
    with IPRoute() as ip:
        nets = []
        for family in (socket.AF_INET, socket.AF_INET6):
            for route in ip.get_routes(family=family):
                dst = route.get_attr("RTA_DST")
                if dst and route["dst_len"] > 0:
                    net = ipaddress.ip_network(f"{dst}/{route['dst_len']}", strict=False)
                    if net.version == 6 and (net.is_link_local or net.is_multicast or net.prefixlen == 128):
                        continue
                    nets.append(net)
        return nets
