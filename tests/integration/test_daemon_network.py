"""Container networking through the docker CLI and docker-py, on the real kernel: the
default bridge, published ports (from the host via 127.0.0.1 and from another host),
user-defined networks with DNS, isolation between networks, none/host/container: modes,
connect/disconnect of a running container, and nothing left behind, also after kill -9.

orlopd runs in a network namespace of its own (tests/daemon_fixture.py): that is "the
host" here; "another host" is a second namespace joined to it by a veth pair.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid

import pytest
from conftest import needs_root
from daemon_fixture import DOCKER, running_daemon

pytestmark = [needs_root, pytest.mark.skipif(not os.path.exists(DOCKER), reason="no docker CLI")]

HTTPD = "mkdir -p /www && echo hello-from-$(hostname) > /www/index.html && exec httpd -f -p 80 -h /www"


@pytest.fixture(scope="module")
def daemon():
    with running_daemon() as d:
        yield d


@pytest.fixture(scope="module")
def other_host(daemon):
    """A second namespace, 10.123.0.2, cabled to the daemon's (10.123.0.1)."""
    name = "orlop-peer-" + uuid.uuid4().hex[:6]
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "link", "add", "orlpeer0", "netns", daemon.netns, "type", "veth", "peer", "name",
                        "eth0", "netns", name], check=True)
        subprocess.run(["ip", "-n", daemon.netns, "addr", "add", "10.123.0.1/24", "dev", "orlpeer0"], check=True)
        subprocess.run(["ip", "-n", daemon.netns, "link", "set", "orlpeer0", "up"], check=True)
        subprocess.run(["ip", "-n", name, "addr", "add", "10.123.0.2/24", "dev", "eth0"], check=True)
        subprocess.run(["ip", "-n", name, "link", "set", "eth0", "up"], check=True)
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def wget(daemon, url: str, netns: str | None = None) -> subprocess.CompletedProcess:
    argv = ["timeout", "5", "busybox", "wget", "-qO-", url]  # (busybox 1.35's wget -T crashes)
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


def links(daemon) -> set[str]:
    out = daemon.in_netns("ip", "-o", "link", "show").stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}


def test_default_bridge_gives_eth0_an_address_route_and_etc_files(daemon):
    out = daemon.docker("run", "--rm", "--hostname", "box", "--add-host", "db.local:10.1.2.3", "--dns", "9.9.9.9",
                        "busybox", "sh", "-c", "ip -o -4 addr show eth0; ip route; cat /etc/hosts /etc/resolv.conf"
                        ).stdout
    assert "inet 172." in out and "default via 172." in out
    assert "10.1.2.3\tdb.local" in out and "nameserver 9.9.9.9" in out
    address = out.split("inet ")[1].split("/")[0]
    assert f"{address}\tbox" in out
    mac = daemon.docker("run", "--rm", "busybox", "cat", "/sys/class/net/eth0/address").stdout
    assert mac.startswith("02:42:ac:")


def test_published_port_from_the_host_and_from_another_host(daemon, other_host):
    daemon.docker("run", "-d", "--name", "web", "-p", "8080:80", "busybox", "sh", "-c", HTTPD)
    try:
        cid = daemon.docker("inspect", "-f", "{{.Id}}", "web").stdout.strip()
        assert wait_for_http(daemon, "http://127.0.0.1:8080/") == f"hello-from-{cid[:12]}\n"
        assert wait_for_http(daemon, "http://10.123.0.1:8080/", netns=other_host) == f"hello-from-{cid[:12]}\n"
        assert daemon.docker("port", "web").stdout.strip() == "80/tcp -> 0.0.0.0:8080"
        assert "0.0.0.0:8080->80/tcp" in daemon.docker("ps", "--filter", "name=web").stdout
        # another container reaches it through the host's address too (hairpin NAT)
        out = daemon.docker("run", "--rm", "busybox", "timeout", "5", "wget", "-qO-", "http://10.123.0.1:8080/").stdout
        assert out == f"hello-from-{cid[:12]}\n"
        done = daemon.docker("run", "--rm", "-p", "8080:80", "busybox", "true", check=False)
        assert done.returncode != 0 and "port is already allocated" in done.stderr
    finally:
        daemon.docker("rm", "-f", "web")
    assert wget(daemon, "http://127.0.0.1:8080/").returncode != 0


def test_random_host_port_and_publish_all(daemon):
    daemon.docker("run", "-d", "--name", "rnd", "-p", "80", "--expose", "81", "busybox", "sh", "-c", HTTPD)
    daemon.docker("run", "-d", "--name", "all", "--expose", "80", "-P", "busybox", "sh", "-c", HTTPD)
    try:
        for name in ("rnd", "all"):
            ports = json.loads(daemon.docker("inspect", "-f", "{{json .NetworkSettings.Ports}}", name).stdout)
            host_port = int(ports["80/tcp"][0]["HostPort"])
            assert host_port > 1024
            assert wait_for_http(daemon, f"http://127.0.0.1:{host_port}/").startswith("hello-from-")
        ports = json.loads(daemon.docker("inspect", "-f", "{{json .NetworkSettings.Ports}}", "rnd").stdout)
        assert ports["81/tcp"] is None  # exposed, not published
    finally:
        daemon.docker("rm", "-f", "rnd", "all")


def test_user_network_names_aliases_and_isolation(daemon):
    daemon.docker("network", "create", "--subnet", "10.77.0.0/24", "--label", "team=web", "front")
    daemon.docker("network", "create", "back")
    try:
        daemon.docker("run", "-d", "--name", "api", "--network", "front", "--network-alias", "service",
                      "busybox", "sh", "-c", HTTPD)
        daemon.docker("run", "-d", "--name", "db", "--network", "back", "busybox", "sh", "-c", HTTPD)
        api_ip = daemon.docker("inspect", "-f", "{{.NetworkSettings.Networks.front.IPAddress}}", "api").stdout.strip()
        assert api_ip.startswith("10.77.0.")
        out = daemon.docker("run", "--rm", "--network", "front", "busybox", "sh", "-c",
                            "ping -c1 -W2 api >/dev/null && timeout 5 wget -qO- http://api/ && timeout 5 wget -qO- "
                            "http://service/").stdout
        assert out.count("hello-from-") == 2
        blocked = daemon.docker("run", "--rm", "--network", "back", "busybox", "sh", "-c",
                                f"timeout 3 wget -qO- http://{api_ip}/ || echo blocked", check=False).stdout
        assert blocked.strip().endswith("blocked")
        unnamed = daemon.docker("run", "--rm", "busybox", "sh", "-c", "nslookup api 2>&1 || true").stdout
        assert api_ip not in unnamed  # the default bridge has no name service, as Docker's
        inspected = json.loads(daemon.docker("network", "inspect", "front").stdout)[0]
        assert inspected["Labels"] == {"team": "web"} and inspected["IPAM"]["Config"][0]["Subnet"] == "10.77.0.0/24"
        assert [c["Name"] for c in inspected["Containers"].values()] == ["api"]
        done = daemon.docker("network", "rm", "front", check=False)
        assert done.returncode != 0 and "active endpoints" in done.stderr
        assert "front" in daemon.docker("network", "ls", "--filter", "label=team=web").stdout
    finally:
        daemon.docker("rm", "-f", "api", "db")
        daemon.docker("network", "rm", "front", "back")
    assert not any(name.startswith("orl-") for name in links(daemon))


def test_connect_and_disconnect_a_running_container(daemon):
    daemon.docker("network", "create", "extra")
    daemon.docker("run", "-d", "--name", "target", "--network", "extra", "busybox", "sh", "-c", HTTPD)
    daemon.docker("run", "-d", "--name", "mover", "busybox", "sleep", "1000")
    try:
        fails = daemon.docker("exec", "mover", "timeout", "3", "wget", "-qO-", "http://target/", check=False)
        assert fails.returncode != 0
        daemon.docker("network", "connect", "--alias", "mv", "extra", "mover")
        out = daemon.docker("exec", "mover", "sh", "-c", "ip -o link; timeout 5 wget -qO- http://172.0.0.0/ 2>/dev/null;"
                            " true").stdout
        assert "eth1" in out
        target_ip = daemon.docker("inspect", "-f", "{{.NetworkSettings.Networks.extra.IPAddress}}",
                                  "target").stdout.strip()
        assert daemon.docker("exec", "mover", "timeout", "5", "wget", "-qO-", f"http://{target_ip}/").stdout.startswith(
            "hello-from-")
        assert daemon.docker("exec", "target", "nslookup", "mv").returncode == 0
        daemon.docker("network", "disconnect", "extra", "mover")
        assert "eth1" not in daemon.docker("exec", "mover", "ip", "-o", "link").stdout
    finally:
        daemon.docker("rm", "-f", "target", "mover")
        daemon.docker("network", "rm", "extra")


def test_internal_network_cannot_leave(daemon, other_host):
    daemon.docker("network", "create", "--internal", "sealed")
    try:
        out = daemon.docker("run", "--rm", "--network", "sealed", "busybox", "sh", "-c",
                            "timeout 3 wget -qO- http://10.123.0.2/ 2>&1; ping -c1 -W1 10.123.0.1 >/dev/null 2>&1 "
                            "&& echo reached || echo sealed", check=False).stdout
        assert out.strip().endswith("sealed")
    finally:
        daemon.docker("network", "rm", "sealed")


def test_none_host_and_container_modes(daemon):
    out = daemon.docker("run", "--rm", "--network", "none", "busybox", "ip", "-o", "link").stdout
    assert [line.split(":")[1].strip() for line in out.splitlines()] == ["lo"]
    assert "UP" in out or "LOOPBACK,UP" in out
    host_links = daemon.docker("run", "--rm", "--network", "host", "busybox", "ip", "-o", "link").stdout
    assert "orlop0" in host_links
    daemon.docker("run", "-d", "--name", "owner", "busybox", "sleep", "1000")
    try:
        owner_if = daemon.docker("exec", "owner", "ip", "-o", "-4", "addr", "show", "eth0").stdout.split()[3]
        shared = daemon.docker("run", "--rm", "--network", "container:owner", "busybox", "ip", "-o", "-4", "addr",
                               "show", "eth0").stdout.split()[3]
        assert shared == owner_if
        pid = daemon.docker("inspect", "-f", "{{.State.Pid}}", "owner").stdout.strip()
        done = daemon.docker("run", "--rm", "--network", "container:owner", "busybox", "readlink", "/proc/self/ns/net")
        assert done.stdout.strip() == os.readlink(f"/proc/{pid}/ns/net")
    finally:
        daemon.docker("rm", "-f", "owner")


def test_docker_py_networks(daemon):
    client = daemon.client()
    try:
        net = client.networks.create("pynet", driver="bridge", labels={"k": "v"})
        c = client.containers.run("busybox", "sleep 1000", detach=True, network="pynet", name="pyc-net")
        net.reload()
        assert [x.name for x in net.containers] == ["pyc-net"]
        c.reload()
        assert c.attrs["NetworkSettings"]["Networks"]["pynet"]["IPAddress"]
        net.disconnect(c)
        c.reload()
        assert "pynet" not in c.attrs["NetworkSettings"]["Networks"]
        c.remove(force=True)
        assert client.networks.prune()["NetworksDeleted"] == ["pynet"]
        with pytest.raises(Exception) as caught:
            client.networks.get("pynet")
        assert "not found" in str(caught.value)
    finally:
        client.close()


def test_kill_9_and_restart_keeps_ports_and_leaks_nothing():
    with running_daemon() as d:
        d.docker("network", "create", "survive")
        d.docker("run", "-d", "--name", "keep", "--network", "survive", "-p", "9090:80", "busybox", "sh", "-c", HTTPD)
        d.docker("run", "-d", "--name", "gone", "busybox", "sleep", "1000")
        assert wait_for_http(d, "http://127.0.0.1:9090/").startswith("hello-from-")
        rules_before = d.in_netns("nft", "list", "table", "ip", "orlop").stdout
        links_before = links(d)
        gone_pid = int(d.docker("inspect", "-f", "{{.State.Pid}}", "gone").stdout)
        d.kill()
        os.kill(gone_pid, 9)  # dies while no daemon listens
        time.sleep(1)
        d.start()
        assert wait_for_http(d, "http://127.0.0.1:9090/").startswith("hello-from-")
        gone_veths = links_before - links(d)
        assert len(gone_veths) == 1 and next(iter(gone_veths)).startswith("veth")  # only the dead one's
        rules_after = d.in_netns("nft", "list", "table", "ip", "orlop").stdout
        assert rules_after == rules_before  # same rules, nothing duplicated
        again = d.docker("run", "--rm", "busybox", "sh", "-c", "ip -o -4 addr show eth0").stdout
        assert " 172." in again  # the dead container's address was released and reusable
        d.docker("rm", "-f", "keep", "gone")
        d.docker("network", "rm", "survive")
        assert not any(n.startswith(("veth", "orl-")) for n in links(d))
        assert "dnat to" not in d.in_netns("nft", "list", "table", "ip", "orlop").stdout


FAKE_UPSTREAM = """
import socket, sys, threading
import dns.message, dns.rrset
def reply_to(data):
    query = dns.message.from_wire(data)
    reply = dns.message.make_response(query)
    if query.question[0].name.to_text() == "outside.example.":
        reply.answer.append(dns.rrset.from_text("outside.example.", 60, "IN", "A", "192.0.2.44"))
    return reply.to_wire()
def over_tcp():
    server = socket.create_server((sys.argv[1], 53))
    while True:
        conn, _ = server.accept()
        with conn:
            size = int.from_bytes(conn.recv(2), "big")
            data = b""
            while len(data) < size:
                data += conn.recv(size - len(data))
            wire = reply_to(data)
            conn.sendall(len(wire).to_bytes(2, "big") + wire)
threading.Thread(target=over_tcp, daemon=True).start()
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind((sys.argv[1], 53))
print("ready", flush=True)
while True:
    data, addr = sock.recvfrom(65535)
    sock.sendto(reply_to(data), addr)
"""

TCP_CLIENT = """
import sys
import dns.message, dns.query
for name in sys.argv[2:]:
    answer = dns.query.tcp(dns.message.make_query(name, "A"), sys.argv[1], timeout=5)
    print(name, *sorted(r.address for rrset in answer.answer for r in rrset))
"""


def test_other_names_are_forwarded_to_the_hosts_resolver(daemon, tmp_path):
    from orlop.network.dns import host_resolvers

    upstream = host_resolvers()[0]
    if not upstream.startswith("127."):  # make the host's resolver address exist in the daemon's namespace
        daemon.in_netns("ip", "link", "add", "orlres0", "type", "veth", "peer", "name", "orlres1", check=True)
        daemon.in_netns("ip", "addr", "add", f"{upstream}/32", "dev", "orlres0", check=True)
        daemon.in_netns("ip", "link", "set", "orlres0", "up", check=True)
        daemon.in_netns("ip", "link", "set", "orlres1", "up", check=True)
    script = tmp_path / "upstream.py"
    script.write_text(FAKE_UPSTREAM)
    server = subprocess.Popen(["nsenter", f"--net={daemon.netns_path}", "--", sys.executable, str(script), upstream],
                              stdout=subprocess.PIPE, text=True)
    daemon.docker("network", "create", "resolving")
    try:
        assert server.stdout.readline().strip() == "ready"
        out = daemon.docker("run", "--rm", "--network", "resolving", "busybox", "nslookup", "outside.example").stdout
        assert "192.0.2.44" in out
        # Over TCP too (what a client does with a truncated answer), from a container's namespace.
        daemon.docker("run", "-d", "--name", "tcp-asker", "--network", "resolving", "busybox", "sleep", "60")
        pid = daemon.docker("inspect", "-f", "{{.State.Pid}}", "tcp-asker").stdout.strip()
        gateway = daemon.docker("network", "inspect", "-f", "{{range .IPAM.Config}}{{.Gateway}}{{end}}",
                                "resolving").stdout.strip()
        asked = subprocess.run(["nsenter", f"--net=/proc/{pid}/ns/net", "--", sys.executable, "-c", TCP_CLIENT,
                                gateway, "outside.example", "tcp-asker"], capture_output=True, text=True, timeout=30)
        own = daemon.docker("inspect", "-f", "{{.NetworkSettings.Networks.resolving.IPAddress}}",
                            "tcp-asker").stdout.strip()
        assert asked.stdout.splitlines() == ["outside.example 192.0.2.44", f"tcp-asker {own}"], asked.stderr
    finally:
        daemon.docker("rm", "-f", "tcp-asker", check=False)
        server.kill()
        server.wait()
        daemon.docker("network", "rm", "resolving")
        daemon.in_netns("ip", "link", "del", "orlres0")


def test_legacy_links_mac_addresses_and_host_gateway(daemon):
    """--link on the default bridge (hosts entry and Docker's DB_* variables), --mac-address
    (kept over a restart), --add-host NAME:host-gateway."""
    daemon.docker("run", "-d", "--name", "linked-db", "--expose", "5432", "-e", "POSTGRES_DB=app", "busybox",
                  "sleep", "300")
    try:
        db_ip = daemon.docker("inspect", "-f", "{{.NetworkSettings.IPAddress}}", "linked-db").stdout.strip()
        out = daemon.docker("run", "--rm", "--name", "linker", "--link", "linked-db:db", "busybox", "sh", "-c",
                            "grep -w db /etc/hosts; env | grep '^DB_' | sort").stdout.splitlines()
        assert out[0].split() [0] == db_ip and out[0].split()[1] == "db" and "linked-db" in out[0].split()
        assert set(out[1:]) >= {"DB_NAME=/linker/db", f"DB_PORT=tcp://{db_ip}:5432",
                                f"DB_PORT_5432_TCP=tcp://{db_ip}:5432", f"DB_PORT_5432_TCP_ADDR={db_ip}",
                                "DB_PORT_5432_TCP_PORT=5432", "DB_PORT_5432_TCP_PROTO=tcp", "DB_ENV_POSTGRES_DB=app"}
        missing = daemon.docker("run", "--rm", "--link", "no-such-db:db", "busybox", "true", check=False)
        assert missing.returncode == 125 and "could not get container for no-such-db" in missing.stderr
        daemon.docker("stop", "-t", "0", "linked-db")
        stopped = daemon.docker("run", "--rm", "--link", "linked-db:db", "busybox", "true", check=False)
        assert "Cannot link to a non running container: /linked-db AS" in stopped.stderr
        daemon.docker("run", "-d", "--name", "fixed-mac", "--mac-address", "02:42:ac:11:ff:01", "busybox",
                      "sleep", "300")
        assert daemon.docker("exec", "fixed-mac", "cat", "/sys/class/net/eth0/address").stdout == \
            "02:42:ac:11:ff:01\n"
        daemon.docker("restart", "-t", "0", "fixed-mac")
        assert daemon.docker("exec", "fixed-mac", "cat", "/sys/class/net/eth0/address").stdout == \
            "02:42:ac:11:ff:01\n"
        bad = daemon.docker("run", "--rm", "--mac-address", "nope", "busybox", "true", check=False)
        assert bad.returncode != 0 and "nope" in bad.stderr
        gateway = daemon.docker("network", "inspect", "-f", "{{range .IPAM.Config}}{{.Gateway}}{{end}}",
                                "bridge").stdout.strip()
        hosts = daemon.docker("run", "--rm", "--add-host", "host.docker.internal:host-gateway", "busybox",
                              "grep", "host.docker.internal", "/etc/hosts").stdout
        assert hosts == f"{gateway}\thost.docker.internal\n"
    finally:
        daemon.docker("rm", "-f", "linked-db", "fixed-mac", check=False)
