"""orlop's packet rules: one nftables table (`ip orlop`), always replaced whole in one
transaction, so that the kernel holds either the old rule set or the new one, never a mix,
and a stale table left by a crash is simply overwritten at the next start.

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


@dataclass(frozen=True)
class Publish:
    proto: str          # tcp | udp
    host_ip: str        # "" or 0.0.0.0: every address of the host
    host_port: int
    container_ip: str
    container_port: int


class NftError(RuntimeError):
    pass


def _quote(name: str) -> str:
    return '"' + name.replace('"', "") + '"'


def ruleset(bridges: list[Bridge], published: list[Publish], limit_forwarding: bool) -> str:
    names = ", ".join(_quote(b.ifname) for b in bridges)
    lines = [f"table ip {TABLE} {{"]
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
        match = f"ip daddr {p.host_ip} " if p.host_ip not in ("", "0.0.0.0") else ""
        lines.append(f"    {match}{p.proto} dport {p.host_port} dnat to {p.container_ip}:{p.container_port}")
    lines += ["  }", "  chain postrouting {", "    type nat hook postrouting priority srcnat; policy accept;"]
    for b in bridges:
        lines.append(f"    iifname {_quote(b.ifname)} oifname {_quote(b.ifname)} ct status dnat masquerade")
        if not b.internal:
            lines.append(f"    ip saddr {b.subnet} oifname != {_quote(b.ifname)} masquerade")
    if bridges:
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


def apply(text: str) -> None:
    """Replace the table in one transaction (creating it first makes the delete valid)."""
    script = f"table ip {TABLE}\ndelete table ip {TABLE}\n{text}"
    _nft(script)


def remove() -> None:
    _nft(f"table ip {TABLE}\ndelete table ip {TABLE}\n")


def current() -> str:
    done = subprocess.run(["nft", "list", "table", "ip", TABLE], capture_output=True, text=True)
    return done.stdout if done.returncode == 0 else ""


def _nft(script: str) -> None:
    try:
        done = subprocess.run(["nft", "-f", "-"], input=script, capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        raise NftError("nft is not installed (Debian package nftables)") from None
    if done.returncode != 0:
        raise NftError(f"nft refused orlop's rule set: {done.stderr.strip()}")
