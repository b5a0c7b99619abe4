"""orlop's packet rules: the nftables table `ip orlop` and, once there is an IPv6 network (or
orlop turned IPv6 forwarding on), `ip6 orlop` doing the same for IPv6; both always replaced
whole in one transaction, so that the kernel holds either the old rule set or the new one,
never a mix, and a stale table left by a crash is simply overwritten at the next start.

What the table does:
- outbound NAT: a network's subnet is masqueraded when it leaves its bridge (not for
  `--internal` networks, which cannot leave at all);
- isolation: traffic within a bridge passes, between two orlop bridges it is dropped,
  into a bridge only as replies or to a published port;
- published ports: DNAT of the host's addresses (or the one given) to the container, in
  prerouting (from other hosts and containers) and output (from the host itself);
  127.0.0.1 works because the bridge gets `route_localnet` and loopback sources are
  masqueraded to the bridge's address — the kernel path, with no proxy process per port;
- when orlop had to turn on IPv4 forwarding, forwarding stays limited to its bridges.

The IPv6 table does the same for the IPv6 subnets of the networks that have one, as dockerd's
ip6tables rules (on by default since Docker 27) do: masquerade out of the bridge (ULA
subnets are not routed beyond the host), isolation, DNAT of the host's IPv6 addresses to a
container's IPv6 address for ports published on `::`. No `route_localnet` exists for IPv6:
as with dockerd's `--userland-proxy=false`, a published port does not answer on `[::1]`.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

TABLE = "orlop"


@dataclass(frozen=True)
class Bridge:
    ifname: str
    subnet: str
    internal: bool = False
    subnet6: str = ""   # the network's IPv6 subnet, if it has IPv6


@dataclass(frozen=True)
class Publish:
    proto: str          # tcp | udp
    host_ip: str        # "" or 0.0.0.0 (:: for IPv6): every address of the host
    host_port: int
    container_ip: str   # an IPv6 address: the rule is the IPv6 table's
    container_port: int

    @property
    def ipv6(self) -> bool:
        return ":" in self.container_ip


class NftError(RuntimeError):
    pass


def _quote(name: str) -> str:
    return '"' + name.replace('"', "") + '"'


def ruleset(bridges: list[Bridge], published: list[Publish], limit_forwarding: bool,
            limit_forwarding6: bool = False) -> str:
    """Both tables' text (the IPv6 one only when there is something for it to do)."""
    text = _table("ip", bridges, [p for p in published if not p.ipv6], limit_forwarding)
    bridges6 = [Bridge(b.ifname, b.subnet6, b.internal) for b in bridges if b.subnet6]
    if bridges6 or limit_forwarding6:
        text += _table("ip6", bridges6, [p for p in published if p.ipv6], limit_forwarding6)
    return text


def _table(family: str, bridges: list[Bridge], published: list[Publish], limit_forwarding: bool) -> str:
    """One family's table: `ip` (IPv4) or `ip6`."""
    names = ", ".join(_quote(b.ifname) for b in bridges)
    anywhere = "0.0.0.0" if family == "ip" else "::"
    lines = [f"table {family} {TABLE} {{"]
    if bridges:
        lines += ["  set bridges {", "    type ifname", f"    elements = {{ {names} }}", "  }"]
    lines += [
        "  chain prerouting {", "    type nat hook prerouting priority dstnat; policy accept;",
        "    fib daddr type local jump publish", "  }",
        "  chain output {", "    type nat hook output priority -100; policy accept;",
        "    fib daddr type local jump publish", "  }",
        "  chain publish {",
    ]
    for p in published:
        match = f"{family} daddr {p.host_ip} " if p.host_ip not in ("", anywhere) else ""
        target = f"[{p.container_ip}]" if family == "ip6" else p.container_ip
        lines.append(f"    {match}{p.proto} dport {p.host_port} dnat to {target}:{p.container_port}")
    lines += ["  }", "  chain postrouting {", "    type nat hook postrouting priority srcnat; policy accept;"]
    for b in bridges:
        lines.append(f"    iifname {_quote(b.ifname)} oifname {_quote(b.ifname)} ct status dnat masquerade")
        if not b.internal:
            lines.append(f"    {family} saddr {b.subnet} oifname != {_quote(b.ifname)} masquerade")
    if bridges and family == "ip":  # (IPv6 has no route_localnet: ::1 never leaves lo)
        lines.append("    ip saddr 127.0.0.0/8 oifname @bridges masquerade")
    lines += ["  }", "  chain forward {", "    type filter hook forward priority filter; policy accept;"]
    if bridges:
        lines.append("    oifname @bridges ct state established,related accept")
    for b in bridges:
        name = _quote(b.ifname)
        lines.append(f"    iifname {name} oifname {name} accept")
    if bridges:
        lines.append("    iifname @bridges oifname @bridges drop")
    for b in bridges:
        name = _quote(b.ifname)
        lines.append(f"    iifname {name} {'drop' if b.internal else 'accept'}")
        if not b.internal:
            lines.append(f"    oifname {name} ct status dnat accept")
    if bridges:
        lines.append("    oifname @bridges drop")
    if limit_forwarding:
        lines.append("    drop")  # orlop turned forwarding on: nothing but its own is forwarded
    lines += ["  }", "}"]
    return "\n".join(line for line in lines if line) + "\n"


_RESET = f"table ip {TABLE}\ndelete table ip {TABLE}\ntable ip6 {TABLE}\ndelete table ip6 {TABLE}\n"


def apply(text: str) -> None:
    """Replace both tables in one transaction (creating each first makes its delete valid;
    an IPv6 table that `text` does not hold is thereby removed)."""
    _nft(_RESET + text)


def remove() -> None:
    _nft(_RESET)


def current() -> str:
    out = []
    for family in ("ip", "ip6"):
        done = subprocess.run(["nft", "list", "table", family, TABLE], capture_output=True, text=True)
        out.append(done.stdout if done.returncode == 0 else "")
    return "".join(out)


def _nft(script: str) -> None:
    try:
        done = subprocess.run(["nft", "-f", "-"], input=script, capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        raise NftError("nft is not installed (Debian package nftables)") from None
    if done.returncode != 0:
        raise NftError(f"nft refused orlop's rule set: {done.stderr.strip()}")
