"""Address management: each network's subnet, gateway and leases, kept in one JSON file
written atomically, so that an address is never handed out twice, also across a crash or
a daemon restart.

Addresses are leased lowest-free first (the network, gateway and broadcast addresses never),
to an owner (a container's endpoint id) that releases them.
"""

from __future__ import annotations

import ipaddress
import json
import os
import threading

from orlop.errors import Conflict, InvalidParameter
from orlop.fsutil import write_atomic

# Docker's default address pools: the first free /16 of 172.17-31, then /20s of 192.168.
DEFAULT_POOLS = [ipaddress.ip_network(f"172.{n}.0.0/16") for n in range(17, 32)] + \
                [ipaddress.ip_network(f"192.168.{n}.0/20") for n in range(0, 256, 16)]


class IPAM:
    def __init__(self, path: str) -> None:
        self.path = path
        self.lock = threading.Lock()
        try:
            with open(path) as f:
                self.pools: dict[str, dict] = json.load(f)
        except FileNotFoundError:
            self.pools = {}

    def _save(self) -> None:
        os.makedirs(os.path.dirname(self.path), 0o700, exist_ok=True)
        write_atomic(self.path, json.dumps(self.pools, indent=1).encode())

    # -- pools -----------------------------------------------------------------------------------
    def add_pool(self, network_id: str, subnet: str | None, gateway: str | None,
                 in_use: list[ipaddress.IPv4Network] = ()) -> tuple[str, str]:
        """Reserve a subnet for a network (the given one, or the first default pool that
        overlaps neither another network's nor a host route in `in_use`); (subnet, gateway)."""
        with self.lock:
            taken = [ipaddress.ip_network(p["subnet"]) for p in self.pools.values()] + list(in_use)
            if subnet:
                try:
                    net = ipaddress.ip_network(subnet, strict=False)
                except ValueError as e:
                    raise InvalidParameter(f"invalid subnet {subnet!r}: {e}") from None
                if net.version != 4 or net.prefixlen > 30:
                    raise InvalidParameter(f"invalid subnet {subnet!r}: an IPv4 subnet of /30 or larger")
                clash = next((t for t in taken if t.overlaps(net)), None)
                if clash is not None:
                    raise Conflict(f"Pool overlaps with other one on this address space ({net} and {clash})")
            else:
                net = next((p for p in DEFAULT_POOLS if not any(t.overlaps(p) for t in taken)), None)
                if net is None:
                    raise Conflict("could not find an available, non-overlapping IPv4 address pool among "
                                   "the defaults to assign to the network")
            hosts = net.hosts()
            gw = ipaddress.ip_address(gateway) if gateway else next(hosts)
            if gw not in net or gw in (net.network_address, net.broadcast_address):
                raise InvalidParameter(f"gateway {gw} is not a host address of subnet {net}")
            self.pools[network_id] = {"subnet": str(net), "gateway": str(gw), "leases": {}}
            self._save()
            return str(net), str(gw)

    def remove_pool(self, network_id: str) -> None:
        with self.lock:
            if self.pools.pop(network_id, None) is not None:
                self._save()

    def pool(self, network_id: str) -> dict:
        return self.pools[network_id]

    # -- leases ----------------------------------------------------------------------------------
    def lease(self, network_id: str, owner: str, wanted: str | None = None) -> str:
        """An address of the network for `owner` (the same one again if it has one)."""
        with self.lock:
            pool = self.pools[network_id]
            leases: dict[str, str] = pool["leases"]
            for address, holder in leases.items():
                if holder == owner:
                    return address
            net = ipaddress.ip_network(pool["subnet"])
            if wanted:
                address = ipaddress.ip_address(wanted)
                if address not in net or address in (net.network_address, net.broadcast_address) \
                        or str(address) == pool["gateway"]:
                    raise InvalidParameter(f"address {wanted} is not available in subnet {net}")
                if str(address) in leases:
                    raise Conflict(f"Address already in use: {wanted}")
                chosen = str(address)
            else:
                chosen = next((str(a) for a in net.hosts() if str(a) != pool["gateway"] and str(a) not in leases),
                              None)
                if chosen is None:
                    raise Conflict(f"no available IPv4 addresses on network {network_id[:12]} ({net})")
            leases[chosen] = owner
            self._save()
            return chosen

    def release(self, network_id: str, owner: str) -> None:
        with self.lock:
            pool = self.pools.get(network_id)
            if pool is None:
                return
            for address in [a for a, holder in pool["leases"].items() if holder == owner]:
                del pool["leases"][address]
            self._save()

    def owners(self, network_id: str) -> set[str]:
        return set(self.pools.get(network_id, {}).get("leases", {}).values())


def mac_for(address: str) -> str:
    """Docker's MAC for an IPv4 address: 02:42 then the address's four bytes."""
    return "02:42:" + ":".join(f"{b:02x}" for b in ipaddress.ip_address(address).packed)
