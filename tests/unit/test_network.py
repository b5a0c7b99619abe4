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
