"""Network library pieces that need no root: IPAM, the nftables rule set's text, DNS answers."""

from __future__ import annotations

import asyncio
import socket

import dns.message
import dns.rcode
import pytest

from orlop.errors import Conflict, InvalidParameter
from orlop.network import dns as network_dns
from orlop.network import nft
from orlop.network.ipam import IPAM, mac_for


def test_ipam_leases_are_unique_persistent_and_released(tmp_path):
    path = str(tmp_path / "ipam.json")
    ipam = IPAM(path)
    subnet, gateway = ipam.add_pool("n1", "10.7.0.0/29", None)
    assert (subnet, gateway) == ("10.7.0.0/29", "10.7.0.1")
    first = ipam.lease("n1", "a")
    assert first == "10.7.0.2" and ipam.lease("n1", "a") == first  # same owner, same address
    again = IPAM(path)  # after a restart
    assert again.lease("n1", "b") == "10.7.0.3"
    again.release("n1", "a")
    assert again.lease("n1", "c") == "10.7.0.2"  # lowest free
    with pytest.raises(Conflict):
        again.lease("n1", "d", wanted="10.7.0.3")
    for owner in ("e", "f", "g"):
        again.lease("n1", owner)
    with pytest.raises(Conflict, match="no available"):
        again.lease("n1", "h")


def test_ipam_pools_do_not_overlap(tmp_path):
    import ipaddress

    ipam = IPAM(str(tmp_path / "ipam.json"))
    assert ipam.add_pool("a", None, None)[0] == "172.17.0.0/16"
    host = [ipaddress.ip_network("172.18.0.0/16")]
    assert ipam.add_pool("b", None, None, host)[0] == "172.19.0.0/16"
    with pytest.raises(Conflict, match="overlaps"):
        ipam.add_pool("c", "172.17.5.0/24", None)
    with pytest.raises(InvalidParameter):
        ipam.add_pool("d", "10.0.0.0/24", "10.1.0.1")
    with pytest.raises(InvalidParameter):
        ipam.add_pool("e", "not-a-subnet", None)


def test_docker_style_mac():
    assert mac_for("172.17.0.2") == "02:42:ac:11:00:02"


def test_ruleset_isolates_networks_and_publishes_ports():
    text = nft.ruleset([nft.Bridge("orlop0", "172.17.0.0/16"), nft.Bridge("br-x", "10.9.0.0/24", internal=True)],
                       [nft.Publish("tcp", "", 8080, "172.17.0.2", 80)], limit_forwarding=False)
    assert 'ip saddr 172.17.0.0/16 oifname != "orlop0" masquerade' in text
    assert "10.9.0.0/24 oifname" not in text  # an internal network is not NATed out
    assert "tcp dport 8080 dnat to 172.17.0.2:80" in text
    assert "iifname @bridges oifname @bridges drop" in text
    assert 'iifname "br-x" drop' in text
    assert text.rstrip().endswith("}") and "\n    drop\n" not in text
    limited = nft.ruleset([], [], limit_forwarding=True)
    assert "\n    drop\n" in limited


def _query(port: int, name: str) -> dns.message.Message:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(5)
        s.sendto(dns.message.make_query(name, "A").to_wire(), ("127.0.0.1", port))
        return dns.message.from_wire(s.recv(65535))


def test_network_dns_answers_names_and_fails_over_for_others(monkeypatch):
    monkeypatch.setattr(network_dns, "host_resolvers", lambda: ["127.0.0.1"])  # nothing listens on :53 there
    monkeypatch.setattr(network_dns, "FORWARD_TIMEOUT", 0.5)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    names = {"web": ["10.9.0.2"], "alias.web": ["10.9.0.2"]}

    async def scenario():
        server = network_dns.NetworkDNS("127.0.0.1", lambda name: names.get(name, []), port=port)
        await server.start()
        loop = asyncio.get_running_loop()
        try:
            answer = await loop.run_in_executor(None, _query, port, "WEB.")
            other = await loop.run_in_executor(None, _query, port, "example.invalid.")
        finally:
            server.stop()
        return answer, other

    answer, other = asyncio.run(scenario())
    assert [str(r) for rrset in answer.answer for r in rrset] == ["10.9.0.2"]
    assert other.rcode() in (dns.rcode.SERVFAIL, dns.rcode.REFUSED, dns.rcode.NXDOMAIN)


# -- IPv6 ----------------------------------------------------------------------------------------
def test_ula_base_is_dockerds_derivation():
    import hashlib
    import ipaddress

    from orlop.network.ipam import ula_base

    base = ula_base("b1f7c3a0-6d5e-4c1b-9a8e-000000000001")
    gid = int.from_bytes(hashlib.sha256(b"b1f7c3a0-6d5e-4c1b-9a8e-000000000001").digest()[:8], "big") & (2**40 - 1)
    assert base.prefixlen == 48 and base.subnet_of(ipaddress.ip_network("fd00::/8"))
    assert int(base.network_address) >> 80 == (0xFD << 40) | gid
    assert ula_base("same") == ula_base("same") != ula_base("other")


def test_ipam_v6_pools_default_to_the_ula_prefix_and_never_overlap(tmp_path):
    import ipaddress
    import itertools

    from orlop.network.ipam import ula_base

    ula = ula_base("engine")
    ipam = IPAM(str(tmp_path / "ipam.json"), ula=ula)
    ipam.add_pool("a", None, None)
    subnet, gateway = ipam.add_pool("a", None, None, family=6)
    first = next(ula.subnets(new_prefix=64))
    assert subnet == str(first) and gateway == str(first.network_address + 1)
    candidates = list(itertools.islice(ula.subnets(new_prefix=64), 3))
    in_use = [candidates[1], ipaddress.ip_network("10.0.0.0/8")]  # host routes
    ipam.add_pool("b", None, None)
    second, _ = ipam.add_pool("b", None, None, in_use, family=6)
    assert second == str(candidates[2])  # past the taken one and the host's route
    ipam.add_pool("c", None, None)
    assert ipam.add_pool("c", "fd00:1::/64", "fd00:1::ff", family=6) == ("fd00:1::/64", "fd00:1::ff")
    with pytest.raises(Conflict, match="overlaps"):
        ipam.add_pool("d", "fd00:1::/48", None, family=6)
    with pytest.raises(InvalidParameter, match="it should be fd00:2::/64"):
        ipam.add_pool("e", "fd00:2::1/64", None, family=6)
    with pytest.raises(InvalidParameter, match="Link-Local"):
        ipam.add_pool("e", "fe80::/48", None, family=6)
    with pytest.raises(InvalidParameter, match="multicast"):
        ipam.add_pool("e", "ff02::/64", None, family=6)
    with pytest.raises(InvalidParameter):
        ipam.add_pool("e", "fd00:3::/64", "10.0.0.1", family=6)  # a gateway of the other family
    with pytest.raises(InvalidParameter):
        ipam.add_pool("e", "10.3.0.0/24", None, family=6)
    assert ipam.space("c", 6)["static"] and not ipam.space("a", 6)["static"]
    without_ula = IPAM(str(tmp_path / "other.json"))
    with pytest.raises(Conflict, match="IPv6 address pool"):
        without_ula.add_pool("x", None, None, family=6)


def test_ipam_v6_leases_persist_and_are_released_with_the_v4_ones(tmp_path):
    path = str(tmp_path / "ipam.json")
    ipam = IPAM(path)
    ipam.add_pool("n", "10.8.0.0/24", None)
    ipam.add_pool("n", "fd00:8::/64", None, family=6)
    assert ipam.lease("n", "ep1", family=6) == "fd00:8::2"  # ::1 is the gateway, :: the subnet's own
    assert ipam.lease("n", "ep1") == "10.8.0.2"
    assert ipam.lease("n", "ep2", wanted="fd00:8::99", family=6) == "fd00:8::99"
    again = IPAM(path)  # after a crash: the leases are still held
    assert again.lease("n", "ep3", family=6) == "fd00:8::3"
    with pytest.raises(Conflict, match="in use"):
        again.lease("n", "ep4", wanted="fd00:8::99", family=6)
    for bad in ("fd00:8::", "fd00:8::1", "fd00:9::5"):
        with pytest.raises(InvalidParameter):
            again.lease("n", "ep4", wanted=bad, family=6)
    assert again.owners("n") == {"ep1", "ep2", "ep3"}
    again.release("n", "ep1")
    assert again.owners("n") == {"ep2", "ep3"}
    assert "10.8.0.2" not in again.space("n", 4)["leases"] and "fd00:8::2" not in again.space("n", 6)["leases"]
    assert IPAM(path).lease("n", "ep5", family=6) == "fd00:8::2"


def test_ipam_reads_a_file_of_before_ipv6(tmp_path):
    import json

    path = tmp_path / "ipam.json"
    path.write_text(json.dumps({"n": {"subnet": "10.6.0.0/24", "gateway": "10.6.0.1", "leases": {"10.6.0.2": "a"}}}))
    ipam = IPAM(str(path))
    assert ipam.space("n", 4)["subnet"] == "10.6.0.0/24" and ipam.space("n", 6) is None
    assert ipam.lease("n", "a") == "10.6.0.2" and ipam.lease("n", "b") == "10.6.0.3"


def test_ruleset_has_an_ip6_table_only_for_ipv6_networks():
    v4_only = nft.ruleset([nft.Bridge("orlop0", "172.17.0.0/16")], [], limit_forwarding=False)
    assert "table ip6" not in v4_only
    text = nft.ruleset([nft.Bridge("orlop0", "172.17.0.0/16"),
                        nft.Bridge("br-6", "10.9.0.0/24", subnet6="fd00:9::/64"),
                        nft.Bridge("br-i", "10.8.0.0/24", internal=True, subnet6="fd00:8::/64")],
                       [nft.Publish("tcp", "0.0.0.0", 8080, "10.9.0.2", 80),
                        nft.Publish("tcp", "::", 8080, "fd00:9::2", 80),
                        nft.Publish("udp", "fd00:77::1", 53, "fd00:9::2", 5353)], limit_forwarding=False,
                       limit_forwarding6=True)
    ip4, _, ip6 = text.partition("table ip6 orlop {")
    assert "fd00" not in ip4 and "dnat to 10.9.0.2:80" in ip4
    assert 'ip6 saddr fd00:9::/64 oifname != "br-6" masquerade' in ip6
    assert "fd00:8::/64 oifname" not in ip6  # internal: not NATed out
    assert "tcp dport 8080 dnat to [fd00:9::2]:80" in ip6
    assert "ip6 daddr fd00:77::1 udp dport 53 dnat to [fd00:9::2]:5353" in ip6
    assert '"orlop0"' not in ip6 and 'iifname "br-i" drop' in ip6 and "iifname @bridges oifname @bridges drop" in ip6
    assert ip6.rstrip().endswith("drop\n  }\n}".rstrip())  # orlop turned IPv6 forwarding on
    assert "table ip6 orlop" in nft.ruleset([], [], limit_forwarding=False, limit_forwarding6=True)


def test_network_dns_answers_aaaa_from_the_ipv6_addresses(monkeypatch):
    monkeypatch.setattr(network_dns, "host_resolvers", lambda: ["127.0.0.1"])
    names = {"web": ["10.9.0.2", "fd00:9::2"], "old": ["10.9.0.3"]}
    resolver = network_dns._Resolver(lambda name: names.get(name, []), ["127.0.0.1"])

    def ask(name: str, kind: str) -> dns.message.Message:
        wire = asyncio.run(resolver.answer(dns.message.make_query(name, kind).to_wire(), tcp=False))
        return dns.message.from_wire(wire)

    assert [str(r) for rrset in ask("web.", "AAAA").answer for r in rrset] == ["fd00:9::2"]
    assert [str(r) for rrset in ask("web.", "A").answer for r in rrset] == ["10.9.0.2"]
    empty = ask("old.", "AAAA")  # a known name without IPv6: NOERROR, no answer
    assert empty.rcode() == dns.rcode.NOERROR and not empty.answer
