"""IPv6 on orlopd's networks, through the docker CLI, on the real kernel: dual-stack
user-defined networks (`--ipv6`), addresses and routes in containers, AAAA answers of the
network's DNS, `--ip6`, the ULA prefix of networks without an IPv6 subnet, `--internal`,
isolation, published ports over IPv6, restart of orlopd, and nothing left behind.

orlopd runs in a network namespace of its own (tests/daemon_fixture.py): that is "the
host"; "another host" is a second namespace cabled to it, with fd99::2 facing the daemon's
fd99::1 (and no route to any container's subnet: what reaches it from a container was
masqueraded).
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
import time
import uuid

import pytest
from conftest import needs_root
from daemon_fixture import DOCKER, running_daemon

pytestmark = [needs_root, pytest.mark.skipif(not os.path.exists(DOCKER), reason="no docker CLI"),
              pytest.mark.skipif(not os.path.exists("/proc/sys/net/ipv6"), reason="no IPv6 in this kernel")]

HTTPD = "mkdir -p /www && echo hello-from-$(hostname) > /www/index.html && exec httpd -f -p 80 -h /www"


@pytest.fixture(scope="module")
def daemon():
    with running_daemon() as d:
        yield d


@pytest.fixture(scope="module")
def other_host(daemon):
    """A second namespace, fd99::2 (10.124.0.2), cabled to the daemon's fd99::1 (10.124.0.1),
    serving HTTP on [fd99::2]:8000."""
    name = "orlop-peer6-" + uuid.uuid4().hex[:6]
    subprocess.run(["ip", "netns", "add", name], check=True)
    server = None
    try:
        subprocess.run(["ip", "link", "add", "orlpeer6", "netns", daemon.netns, "type", "veth", "peer", "name",
                        "eth0", "netns", name], check=True)
        for ns, ifname, v4, v6 in ((daemon.netns, "orlpeer6", "10.124.0.1/24", "fd99::1/64"),
                                   (name, "eth0", "10.124.0.2/24", "fd99::2/64")):
            subprocess.run(["ip", "-n", ns, "addr", "add", v4, "dev", ifname], check=True)
            subprocess.run(["ip", "-n", ns, "-6", "addr", "add", v6, "dev", ifname, "nodad"], check=True)
            subprocess.run(["ip", "-n", ns, "link", "set", ifname, "up"], check=True)
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        os.makedirs(f"/tmp/{name}", exist_ok=True)
        with open(f"/tmp/{name}/index.html", "w") as f:
            f.write("hello-from-the-other-host\n")
        server = subprocess.Popen(["ip", "netns", "exec", name, "busybox", "httpd", "-f", "-p", "[fd99::2]:8000", "-h",
                                   f"/tmp/{name}"])
        yield name
    finally:
        if server is not None:
            server.kill()
            server.wait()
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
        subprocess.run(["rm", "-rf", f"/tmp/{name}"])


def wget(daemon, url: str, netns: str | None = None) -> subprocess.CompletedProcess:
    argv = ["timeout", "5", "busybox", "wget", "-qO-", url]
    if netns:
        return subprocess.run(["ip", "netns", "exec", netns, *argv], capture_output=True, text=True, timeout=30)
    return daemon.in_netns(*argv)


def wait_for_http(daemon, url: str, netns: str | None = None) -> str:
    deadline = time.monotonic() + 10
    while True:
        done = wget(daemon, url, netns)
        if done.returncode == 0 or time.monotonic() > deadline:
            return done.stdout
        time.sleep(0.1)


def inspect(daemon, name: str, template: str) -> str:
    return daemon.docker("inspect", "-f", template, name).stdout.strip()


def test_dual_stack_network_addresses_routes_names_and_inspect(daemon):
    created = daemon.docker("network", "create", "--ipv6", "--subnet", "fd00:1::/64", "--subnet", "10.9.0.0/24",
                            "--gateway", "fd00:1::1", "net6")
    try:
        net = json.loads(daemon.docker("network", "inspect", "net6").stdout)[0]
        assert net["Id"] == created.stdout.strip() and net["EnableIPv6"] is True
        assert net["IPAM"]["Config"] == [{"Subnet": "10.9.0.0/24", "Gateway": "10.9.0.1"},
                                         {"Subnet": "fd00:1::/64", "Gateway": "fd00:1::1"}]
        bridge = "orl-" + net["Id"][:11]
        assert "inet6 fd00:1::1/64 scope global" in daemon.in_netns("ip", "-6", "addr", "show", bridge).stdout
        assert "IPV6" in daemon.docker("network", "ls", "--format", "table {{.Name}}\t{{.IPv6}}").stdout
        assert "net6\ttrue" in daemon.docker("network", "ls", "--format", "{{.Name}}\t{{.IPv6}}").stdout

        daemon.docker("run", "-d", "--name", "alpha", "--hostname", "alpha", "--network", "net6", "busybox",
                      "sleep", "300")
        daemon.docker("run", "-d", "--name", "beta", "--network", "net6", "--ip6", "fd00:1::beef", "busybox",
                      "sleep", "300")
        alpha = json.loads(inspect(daemon, "alpha", "{{json .NetworkSettings.Networks.net6}}"))
        assert (alpha["GlobalIPv6Address"], alpha["GlobalIPv6PrefixLen"], alpha["IPv6Gateway"]) == \
            ("fd00:1::2", 64, "fd00:1::1")
        assert alpha["IPAddress"] == "10.9.0.2"
        assert inspect(daemon, "beta", "{{.NetworkSettings.Networks.net6.GlobalIPv6Address}}") == "fd00:1::beef"
        assert inspect(daemon, "beta", "{{.NetworkSettings.Networks.net6.IPAMConfig.IPv6Address}}") == "fd00:1::beef"
        members = json.loads(daemon.docker("network", "inspect", "net6").stdout)[0]["Containers"]
        assert sorted(m["IPv6Address"] for m in members.values()) == ["fd00:1::2/64", "fd00:1::beef/64"]

        seen = daemon.docker("exec", "alpha", "sh", "-c", "ip -6 addr show eth0; ip -6 route; cat /etc/hosts").stdout
        assert "inet6 fd00:1::2/64 scope global" in seen and "scope link" in seen  # and the kernel's fe80
        assert "default via fd00:1::1 dev eth0" in seen
        assert "fd00:1::2\talpha" in seen and "10.9.0.2\talpha" in seen

        by_name = daemon.docker("exec", "alpha", "ping", "-6", "-c", "1", "-W", "3", "beta").stdout
        assert "from fd00:1::beef" in by_name
        by_address = daemon.docker("exec", "beta", "ping", "-6", "-c", "1", "-W", "3", "fd00:1::2").stdout
        assert "1 packets received" in by_address
        looked_up = daemon.docker("exec", "alpha", "nslookup", "-type=AAAA", "beta").stdout
        assert "fd00:1::beef" in looked_up
        both = daemon.docker("exec", "alpha", "nslookup", "beta").stdout
        assert "fd00:1::beef" in both and "10.9.0.3" in both  # A stays

        # AAAA over TCP too, from a container's namespace
        pid = inspect(daemon, "alpha", "{{.State.Pid}}")
        asked = subprocess.run(["nsenter", f"--net=/proc/{pid}/ns/net", "--", sys.executable, "-c", TCP_AAAA,
                                "10.9.0.1", "beta"], capture_output=True, text=True, timeout=30)
        assert asked.stdout.split() == ["fd00:1::beef"], asked.stderr
    finally:
        daemon.docker("rm", "-f", "alpha", "beta", check=False)
        daemon.docker("network", "rm", "net6", check=False)


TCP_AAAA = """
import sys
import dns.message, dns.query
answer = dns.query.tcp(dns.message.make_query(sys.argv[2], "AAAA"), sys.argv[1], timeout=5)
print(*sorted(r.address for rrset in answer.answer for r in rrset))
"""


def test_ip6_refused_as_dockerd_refuses_it(daemon):
    daemon.docker("network", "create", "--ipv6", "--subnet", "fd00:2::/64", "checked6")
    daemon.docker("network", "create", "plain4")
    try:
        outside = daemon.docker("run", "--rm", "--network", "checked6", "--ip6", "fd00:3::5", "busybox", "true",
                                check=False)
        assert outside.returncode == 125
        assert "no configured subnet or ip-range contain the IP address fd00:3::5" in outside.stderr
        no_v6 = daemon.docker("run", "--rm", "--network", "plain4", "--ip6", "fd00:3::5", "busybox", "true",
                              check=False)
        assert no_v6.returncode == 125 and "user specified IP address is supported only when connecting to " \
            "networks with user configured subnets" in no_v6.stderr
        not_v6 = daemon.docker("run", "--rm", "--network", "checked6", "--ip6", "10.1.2.3", "busybox", "true",
                               check=False)
        assert not_v6.returncode != 0 and "10.1.2.3" in not_v6.stderr
        unmasked = daemon.docker("network", "create", "--ipv6", "--subnet", "fd00:4::1/64", "bad6", check=False)
        assert unmasked.returncode != 0 and "it should be fd00:4::/64" in unmasked.stderr
        assert "bad6" not in daemon.docker("network", "ls").stdout
    finally:
        daemon.docker("network", "rm", "checked6", "plain4")


def test_without_a_subnet_a_64_of_the_engines_ula_prefix(daemon):
    from orlop.network.ipam import ula_base

    daemon.docker("network", "create", "--ipv6", "auto6a")
    daemon.docker("network", "create", "--ipv6", "auto6b")
    try:
        with open(os.path.join(daemon.data_root, "engine-id")) as f:
            base = ula_base(f.read().strip())
        subnets = []
        for name in ("auto6a", "auto6b"):
            configs = json.loads(daemon.docker("network", "inspect", "-f", "{{json .IPAM.Config}}", name).stdout)
            assert ipaddress.ip_network(configs[0]["Subnet"]).version == 4
            subnet = ipaddress.ip_network(configs[1]["Subnet"])
            assert subnet.prefixlen == 64 and subnet.subnet_of(base)
            assert configs[1]["Gateway"] == str(subnet.network_address + 1)
            subnets.append(subnet)
        assert not subnets[0].overlaps(subnets[1])
        out = daemon.docker("run", "--rm", "--network", "auto6a", "busybox", "ip", "-6", "addr", "show",
                            "eth0").stdout
        assert f"inet6 {subnets[0].network_address + 2}/64" in out
        # dockerd's driver option does what --ipv6 does (and stays in Options, as in dockerd)
        daemon.docker("network", "create", "-o", "com.docker.network.enable_ipv6=true", "auto6c")
        by_option = json.loads(daemon.docker("network", "inspect", "auto6c").stdout)[0]
        assert by_option["EnableIPv6"] is True and len(by_option["IPAM"]["Config"]) == 2
        unparsable = daemon.docker("network", "create", "-o", "com.docker.network.enable_ipv6=maybe", "auto6d",
                                   check=False)
        assert unparsable.returncode != 0 and "is not a valid bool" in unparsable.stderr
        refused = daemon.docker("network", "create", "--subnet", "fd00:c::/64", "auto6e", check=False)
        assert refused.returncode != 0 and "--ipv6" in refused.stderr
    finally:
        daemon.docker("network", "rm", "auto6a", "auto6b", "auto6c", check=False)


def test_outbound_masquerade_internal_networks_and_isolation(daemon, other_host):
    daemon.docker("network", "create", "--ipv6", "--subnet", "fd00:5::/64", "open6")
    daemon.docker("network", "create", "--ipv6", "--subnet", "fd00:6::/64", "--internal", "sealed6")
    daemon.docker("network", "create", "--ipv6", "--subnet", "fd00:7::/64", "other6")
    try:
        # the other host has no route to fd00:5::/64: the answer arrives because the request was masqueraded
        out = daemon.docker("run", "--rm", "--network", "open6", "busybox", "timeout", "5", "wget", "-qO-",
                            "http://[fd99::2]:8000/").stdout
        assert out == "hello-from-the-other-host\n"
        sealed = daemon.docker("run", "--rm", "--network", "sealed6", "busybox", "sh", "-c",
                               "ip -6 route; timeout 3 wget -qO- http://[fd99::2]:8000/ || echo sealed",
                               check=False).stdout
        assert "default" not in sealed and sealed.strip().endswith("sealed")
        daemon.docker("run", "-d", "--name", "sealed-box", "--network", "sealed6", "busybox", "sleep", "60")
        sealed_ep = json.loads(inspect(daemon, "sealed-box", "{{json .NetworkSettings.Networks.sealed6}}"))
        assert sealed_ep["GlobalIPv6Address"] == "fd00:6::2" and sealed_ep["IPv6Gateway"] == ""  # as dockerd's
        daemon.docker("run", "-d", "--name", "iso-target", "--network", "other6", "busybox", "sh", "-c", HTTPD)
        blocked = daemon.docker("run", "--rm", "--network", "open6", "busybox", "sh", "-c",
                                "ping -6 -c1 -W2 fd00:7::2 >/dev/null 2>&1 && echo reached; "
                                "timeout 3 wget -qO- http://[fd00:7::2]/ || echo blocked", check=False).stdout
        assert "reached" not in blocked and blocked.strip().endswith("blocked")
        same = daemon.docker("run", "--rm", "--network", "other6", "busybox", "timeout", "5", "wget", "-qO-",
                             "http://[fd00:7::2]/").stdout
        assert same.startswith("hello-from-")
    finally:
        daemon.docker("rm", "-f", "iso-target", "sealed-box", check=False)
        daemon.docker("network", "rm", "open6", "sealed6", "other6")


def test_published_port_over_ipv6(daemon, other_host):
    daemon.docker("network", "create", "--ipv6", "--subnet", "fd00:8::/64", "pub6")
    daemon.docker("network", "create", "pub4")
    try:
        daemon.docker("run", "-d", "--name", "web6", "--network", "pub6", "-p", "8086:80", "busybox", "sh", "-c", HTTPD)
        daemon.docker("run", "-d", "--name", "web4", "--network", "pub4", "-p", "8084:80", "busybox", "sh", "-c", HTTPD)
        cid = inspect(daemon, "web6", "{{.Id}}")[:12]
        assert daemon.docker("port", "web6").stdout.splitlines() == ["80/tcp -> 0.0.0.0:8086", "80/tcp -> [::]:8086"]
        # an IPv4-only container is published on IPv4 only (dockerd without its userland proxy)
        assert daemon.docker("port", "web4").stdout.splitlines() == ["80/tcp -> 0.0.0.0:8084"]
        # from another host, to the daemon's IPv6 address; from the host itself, to one of its addresses
        assert wait_for_http(daemon, "http://[fd99::1]:8086/", netns=other_host) == f"hello-from-{cid}\n"
        assert wait_for_http(daemon, "http://[fd99::1]:8086/") == f"hello-from-{cid}\n"
        assert wait_for_http(daemon, "http://10.124.0.1:8086/", netns=other_host) == f"hello-from-{cid}\n"
        assert wget(daemon, "http://[fd99::1]:8084/", netns=other_host).returncode != 0
        # from another container on the network, through the host's address (hairpin)
        out = daemon.docker("run", "--rm", "--network", "pub6", "busybox", "timeout", "5", "wget", "-qO-",
                            "http://[fd99::1]:8086/").stdout
        assert out == f"hello-from-{cid}\n"
        # the port is held on :: as on 0.0.0.0
        taken = daemon.docker("run", "--rm", "--network", "pub6", "-p", "[::]:8086:80", "busybox", "true", check=False)
        assert taken.returncode != 0 and "port is already allocated" in taken.stderr
        random = daemon.docker("run", "-d", "--name", "rnd6", "--network", "pub6", "-p", "80", "busybox", "sh", "-c",
                               HTTPD)
        assert random.returncode == 0
        ports = json.loads(inspect(daemon, "rnd6", "{{json .NetworkSettings.Ports}}"))["80/tcp"]
        assert [p["HostIp"] for p in ports] == ["0.0.0.0", "::"] and ports[0]["HostPort"] == ports[1]["HostPort"]
        assert wait_for_http(daemon, f"http://[fd99::1]:{ports[1]['HostPort']}/", netns=other_host).startswith(
            "hello-from-")
    finally:
        daemon.docker("rm", "-f", "web6", "web4", "rnd6", check=False)
        daemon.docker("network", "rm", "pub6", "pub4")
    assert "dnat to" not in daemon.in_netns("nft", "list", "ruleset").stdout


def test_restart_keeps_ipv6_and_network_rm_leaves_nothing():
    with running_daemon() as d:
        d.docker("network", "create", "--ipv6", "--subnet", "fd00:9::/64", "keep6")
        d.docker("run", "-d", "--name", "srv6", "--network", "keep6", "-p", "8096:80", "busybox", "sh", "-c", HTTPD)
        d.docker("run", "-d", "--name", "gone6", "--network", "keep6", "busybox", "sleep", "300")
        assert wait_for_http(d, "http://[fd00:9::1]:8096/").startswith("hello-from-")
        rules_before = d.in_netns("nft", "list", "ruleset").stdout
        assert "table ip6 orlop" in rules_before
        gone_pid = int(inspect(d, "gone6", "{{.State.Pid}}"))
        d.kill()
        os.kill(gone_pid, 9)  # dies while no daemon listens
        time.sleep(1)
        d.start()
        assert wait_for_http(d, "http://[fd00:9::1]:8096/").startswith("hello-from-")
        assert d.in_netns("nft", "list", "ruleset").stdout == rules_before  # same rules, nothing duplicated
        # the dead container's IPv6 address was released; the running one's was kept
        again = d.docker("run", "--rm", "--network", "keep6", "busybox", "sh", "-c",
                         "ip -6 addr show eth0; ping -6 -c1 -W3 srv6").stdout
        assert "inet6 fd00:9::3/64" in again and "from fd00:9::2" in again
        d.stop()  # SIGTERM, then a start again: bridges and rules recreated as they were
        d.start()
        assert wait_for_http(d, "http://[fd00:9::1]:8096/").startswith("hello-from-")

        d.docker("rm", "-f", "srv6", "gone6")
        d.docker("network", "rm", "keep6")
        assert "fd00:9" not in d.in_netns("ip", "-6", "addr").stdout
        assert "fd00:9" not in d.in_netns("ip", "-6", "route").stdout
        ruleset = d.in_netns("nft", "list", "ruleset").stdout
        assert "fd00:9" not in ruleset and "dnat to" not in ruleset
        # orlop turned IPv6 forwarding on here: its ip6 table stays, forwarding nothing but its own
        assert d.in_netns("sysctl", "-n", "net.ipv6.conf.all.forwarding").stdout.strip() == "1"
        ip6 = d.in_netns("nft", "list", "table", "ip6", "orlop").stdout
        assert "set bridges" not in ip6 and ip6.split("chain forward")[1].split("}")[0].strip().endswith("drop")


def test_connect_and_disconnect_a_running_container_to_an_ipv6_network(daemon):
    daemon.docker("network", "create", "--ipv6", "--subnet", "fd00:a::/64", "join6")
    daemon.docker("run", "-d", "--name", "join-target", "--network", "join6", "busybox", "sleep", "300")
    daemon.docker("run", "-d", "--name", "joiner", "busybox", "sleep", "300")  # default bridge: IPv4 only
    try:
        before = daemon.docker("exec", "joiner", "sh", "-c", "ip -6 addr show eth0; ip -6 route").stdout
        assert "inet6" not in before and "default" not in before  # IPv6 off on an IPv4-only network's interface
        daemon.docker("network", "connect", "--ip6", "fd00:a::77", "--alias", "late6", "join6", "joiner")
        seen = daemon.docker("exec", "joiner", "sh", "-c", "ip -6 addr show eth1; ip -6 route").stdout
        assert "inet6 fd00:a::77/64 scope global" in seen and "default via fd00:a::1 dev eth1" in seen
        assert "fd00:a::77" in daemon.docker("exec", "join-target", "nslookup", "-type=AAAA", "late6").stdout
        assert "1 packets received" in daemon.docker("exec", "joiner", "ping", "-6", "-c1", "-W3",
                                                     "fd00:a::2").stdout
        daemon.docker("network", "disconnect", "join6", "joiner")
        after = daemon.docker("exec", "joiner", "sh", "-c", "ip -6 addr; ip -6 route").stdout
        assert "fd00:a" not in after and "default" not in after
        pool = json.load(open(os.path.join(daemon.data_root, "network", "ipam.json")))
        net_id = inspect(daemon, "join-target", "{{.NetworkSettings.Networks.join6.NetworkID}}")
        assert list(pool[net_id]["ipv6"]["leases"]) == ["fd00:a::2"]  # the joiner's lease went with it
    finally:
        daemon.docker("rm", "-f", "join-target", "joiner", check=False)
        daemon.docker("network", "rm", "join6")
