"""Address management: each network's subnets (one IPv4, and one IPv6 when the network has
IPv6 enabled), their gateways and leases, kept in one JSON file written atomically, so that
an address is never handed out twice, also across a crash or a daemon restart.

Addresses are leased lowest-free first (the subnet's own address, the gateway and the IPv4
broadcast address never), to an owner (a container's endpoint id) that releases them.

A network without an IPv6 subnet of its own gets a /64 of this engine's ULA prefix, as
dockerd 27+ does: fd00::/8 with a 40-bit Global ID taken from the SHA-256 of the engine's
id (RFC 4193, section 3.2.2 in spirit), stable for as long as the engine id is.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import threading
from collections.abc import Iterator

from orlop.errors import Conflict, InvalidParameter
from orlop.fsutil import write_atomic

# Docker's default address pools: the first free /16 of 172.17-31, then /20s of 192.168.
DEFAULT_POOLS = [ipaddress.ip_network(f"172.{n}.0.0/16") for n in range(17, 32)] + \
                [ipaddress.ip_network(f"192.168.{n}.0/20") for n in range(0, 256, 16)]
ULA_SUBNET_PREFIX = 64
LINK_LOCAL = ipaddress.ip_network("fe80::/64")
FAMILY_KEY = {4: "ipv4", 6: "ipv6"}

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def ula_base(engine_id: str) -> ipaddress.IPv6Network:
    """This engine's /48 of fd00::/8: the 40 low bits of the first 8 bytes of sha256(id)."""
    global_id = int.from_bytes(hashlib.sha256(engine_id.encode()).digest()[:8], "big") & ((1 << 40) - 1)
    return ipaddress.IPv6Network((int(ipaddress.IPv6Address("fd00::")) | (global_id << 80), 48))


def family_of(address: str) -> int:
    return 6 if ":" in address else 4


def parse_subnet(subnet: str, family: int) -> Network:
    """A requested subnet, checked as dockerd checks it (IPv4: /30 or larger, as before;
    IPv6: its own address, not multicast, clear of the link-local fe80::/64)."""
    try:
        net = ipaddress.ip_network(subnet, strict=family == 6)
    except ValueError as e:
        if family == 6 and "host bits" in str(e):
            masked = ipaddress.ip_network(subnet, strict=False)
            raise InvalidParameter(f"invalid subnet {subnet}: it should be {masked}") from None
        raise InvalidParameter(f"invalid subnet {subnet!r}: {e}") from None
    if family == 4 and (net.version != 4 or net.prefixlen > 30):
        raise InvalidParameter(f"invalid subnet {subnet!r}: an IPv4 subnet of /30 or larger")
    if family == 6:
        if net.version != 6 or net.network_address.ipv4_mapped is not None:
            raise InvalidParameter(f"'{subnet}' is not a valid IPv6 subnet")
        if net.is_multicast:
            raise InvalidParameter(f"multicast subnet '{subnet}' is not allowed")
        if net != LINK_LOCAL and net.overlaps(LINK_LOCAL):
            raise InvalidParameter(f"'{subnet}' clashes with the Link-Local prefix 'fe80::/64'")
        if net.prefixlen > 126:
            raise InvalidParameter(f"invalid subnet {subnet}: an IPv6 subnet of /126 or larger")
    return net


def _hosts(net: Network) -> Iterator:
    """Leasable addresses in order: not the subnet's own address, nor IPv4's broadcast."""
    first = int(net.network_address) + 1
    last = int(net.broadcast_address) - (1 if net.version == 4 else 0)
    cls = type(net.network_address)
    return (cls(n) for n in range(first, last + 1))


class IPAM:
    def __init__(self, path: str, ula: ipaddress.IPv6Network | None = None) -> None:
        self.path = path
        self.ula = ula
        self.lock = threading.Lock()
        try:
            with open(path) as f:
                stored: dict[str, dict] = json.load(f)
        except FileNotFoundError:
            stored = {}
        # {network id: {"ipv4": space, "ipv6": space}}, space = {subnet, gateway, static, leases}
        # (a file of before IPv6 held the IPv4 space alone per network)
        self.pools: dict[str, dict[str, dict]] = {
            nid: ({"ipv4": entry} if "subnet" in entry else entry) for nid, entry in stored.items()}

    def _save(self) -> None:
        os.makedirs(os.path.dirname(self.path), 0o700, exist_ok=True)
        write_atomic(self.path, json.dumps(self.pools, indent=1).encode())

    def _taken(self, family: int) -> list[Network]:
        key = FAMILY_KEY[family]
        return [ipaddress.ip_network(p[key]["subnet"]) for p in self.pools.values() if key in p]

    # -- pools -----------------------------------------------------------------------------------
    def add_pool(self, network_id: str, subnet: str | None, gateway: str | None,
                 in_use: list[Network] = (), family: int = 4) -> tuple[str, str]:
        """Reserve a subnet of `family` for a network (the given one, or the first default
        pool that overlaps neither another network's nor a host route in `in_use`);
        (subnet, gateway)."""
        with self.lock:
            taken = self._taken(family) + [n for n in in_use if n.version == family]
            if subnet:
                net = parse_subnet(subnet, family)
                clash = next((t for t in taken if t.overlaps(net)), None)
                if clash is not None:
                    raise Conflict(f"Pool overlaps with other one on this address space ({net} and {clash})")
            else:
                net = next((p for p in self._defaults(family) if not any(t.overlaps(p) for t in taken)), None)
                if net is None:
                    kind = "IPv4" if family == 4 else "IPv6"
                    raise Conflict(f"could not find an available, non-overlapping {kind} address pool among "
                                   "the defaults to assign to the network")
            try:
                gw = ipaddress.ip_address(gateway) if gateway else next(_hosts(net))
            except ValueError:
                raise InvalidParameter(f"invalid gateway {gateway}: invalid address") from None
            if gw.version != net.version or gw not in net or gw == net.network_address or \
                    (net.version == 4 and gw == net.broadcast_address):
                raise InvalidParameter(f"gateway {gw} is not a host address of subnet {net}")
            self.pools.setdefault(network_id, {})[FAMILY_KEY[family]] = {
                "subnet": str(net), "gateway": str(gw), "static": bool(subnet), "leases": {}}
            self._save()
            return str(net), str(gw)

    def _defaults(self, family: int) -> Iterator[Network]:
        if family == 4:
            return iter(DEFAULT_POOLS)
        if self.ula is None:
            return iter(())
        return self.ula.subnets(new_prefix=ULA_SUBNET_PREFIX)

    def remove_pool(self, network_id: str) -> None:
        with self.lock:
            if self.pools.pop(network_id, None) is not None:
                self._save()

    def space(self, network_id: str, family: int = 4) -> dict | None:
        """The network's {subnet, gateway, static, leases} of `family`, None if it has none."""
        return self.pools.get(network_id, {}).get(FAMILY_KEY[family])

    # -- leases ----------------------------------------------------------------------------------
    def lease(self, network_id: str, owner: str, wanted: str | None = None, family: int = 4) -> str:
        """An address of the network's `family` subnet for `owner` (the same one again if it
        has one)."""
        with self.lock:
            pool = self.pools[network_id][FAMILY_KEY[family]]
            leases: dict[str, str] = pool["leases"]
            for address, holder in leases.items():
                if holder == owner:
                    return address
            net = ipaddress.ip_network(pool["subnet"])
            gateway = ipaddress.ip_address(pool["gateway"])
            if wanted:
                try:
                    address = ipaddress.ip_address(wanted)
                except ValueError:
                    raise InvalidParameter(f"invalid IPv{family} address: {wanted}") from None
                if address not in net or address == net.network_address or address == gateway or \
                        (family == 4 and address == net.broadcast_address):
                    raise InvalidParameter(f"address {wanted} is not available in subnet {net}")
                if str(address) in leases:
                    raise Conflict(f"Address already in use: {wanted}")
                chosen = str(address)
            else:
                chosen = next((str(a) for a in _hosts(net) if a != gateway and str(a) not in leases), None)
                if chosen is None:
                    raise Conflict(f"no available IPv{family} addresses on network {network_id[:12]} ({net})")
            leases[chosen] = owner
            self._save()
            return chosen

    def release(self, network_id: str, owner: str) -> None:
        """Every address `owner` holds on the network, of both families."""
        with self.lock:
            changed = False
            for pool in self.pools.get(network_id, {}).values():
                for address in [a for a, holder in pool["leases"].items() if holder == owner]:
                    del pool["leases"][address]
                    changed = True
            if changed:
                self._save()

    def owners(self, network_id: str) -> set[str]:
        return {owner for pool in self.pools.get(network_id, {}).values() for owner in pool["leases"].values()}


def mac_for(address: str) -> str:
    """Docker's MAC for an IPv4 address: 02:42 then the address's four bytes."""
    return "02:42:" + ":".join(f"{b:02x}" for b in ipaddress.ip_address(address).packed)
