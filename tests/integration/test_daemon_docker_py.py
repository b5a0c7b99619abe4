"""orlopd driven by docker-py (PyPI `docker`), which speaks the Engine API its own way:
raw HTTP with its own hijack handling, JSON decoding of every body, exceptions by status."""

from __future__ import annotations

import os
import socket
import time

import pytest
from conftest import needs_root
from daemon_fixture import running_daemon

docker = pytest.importorskip("docker")
pytestmark = [needs_root]


@pytest.fixture(scope="module")
def client():
    with running_daemon() as d:
        c = d.client()
        yield c
        c.close()


def test_ping_version_info(client):
    assert client.ping() is True
    version = client.version()
    assert version["ApiVersion"] >= "1.41" and version["Os"] == "linux"
    info = client.info()
    assert info["OSType"] == "linux" and "orlop-runtime" in info["Runtimes"]


def test_run_returns_the_output(client):
    assert client.containers.run("busybox", ["echo", "hello", "world"], remove=True) == b"hello world\n"


def test_run_failure_raises_container_error_with_stderr(client):
    with pytest.raises(docker.errors.ContainerError) as caught:
        client.containers.run("busybox", ["sh", "-c", "echo boom >&2; exit 3"], remove=True, stderr=True)
    assert caught.value.exit_status == 3 and b"boom" in caught.value.stderr


def test_detached_container_lifecycle(client):
    c = client.containers.run("busybox", ["sh", "-c", "echo ready; sleep 1000"], detach=True, name="pyc",
                              environment={"A": "1"}, labels={"team": "orlop"}, working_dir="/tmp")
    try:
        deadline = time.monotonic() + 10
        while b"ready" not in c.logs() and time.monotonic() < deadline:
            time.sleep(0.05)
        c.reload()
        assert c.status == "running" and c.labels == {"team": "orlop"}
        assert c.attrs["State"]["Pid"] > 0 and c.attrs["Config"]["WorkingDir"] == "/tmp"
        assert client.containers.get("pyc").id == c.id
        assert [x.id for x in client.containers.list(filters={"label": "team=orlop"})] == [c.id]
        code, out = c.exec_run(["sh", "-c", "echo $A $(pwd); exit 2"])
        assert (code, out) == (2, b"1 /tmp\n")
        code, out = c.exec_run("cat /proc/1/comm")
        assert out == b"sleep\n"
        titles = c.top()["Titles"]
        assert "PID" in titles and "CMD" in titles
        c.rename("pyc2")
        c.reload()
        assert c.name == "pyc2"
        c.kill()
        assert c.wait()["StatusCode"] == 137
    finally:
        c.remove(force=True)
    with pytest.raises(docker.errors.NotFound):
        client.containers.get(c.id)


def test_logs_stream_follows(client):
    c = client.containers.run("busybox", ["sh", "-c", "for i in 1 2 3; do echo n$i; sleep 0.1; done"],
                              detach=True)
    try:
        lines = list(c.logs(stream=True, follow=True))
        assert b"".join(lines) == b"n1\nn2\nn3\n"
        stamped = c.logs(timestamps=True, tail=1)
        assert stamped.endswith(b" n3\n")
    finally:
        c.remove(force=True)


def test_attach_socket_with_stdin(client):
    c = client.containers.create("busybox", ["sh", "-c", "read line; echo got:$line"], stdin_open=True)
    try:
        sock = c.attach_socket(params={"stdin": 1, "stdout": 1, "stream": 1})
        raw = sock._sock if hasattr(sock, "_sock") else sock
        c.start()
        raw.sendall(b"hello\n")
        raw.shutdown(socket.SHUT_WR)
        data = b""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            chunk = raw.recv(4096)
            if not chunk:
                break
            data += chunk
        assert data[:1] == b"\x01" and data[8:] == b"got:hello\n"  # one stdout frame
        assert c.wait()["StatusCode"] == 0
    finally:
        c.remove(force=True)


def test_api_errors_map_to_docker_py_exceptions(client):
    with pytest.raises(docker.errors.NotFound) as caught:
        client.containers.get("nope-not-here")
    assert "No such container" in str(caught.value)
    with pytest.raises(docker.errors.ImageNotFound):
        client.containers.create("no-such-image:1")
    with pytest.raises(docker.errors.APIError) as caught:
        client.api.create_container("busybox", "true", host_config={"RestartPolicy": {"Name": "sometimes"}})
    assert caught.value.status_code == 400
    c = client.containers.run("busybox", "sleep 1000", detach=True)
    try:
        with pytest.raises(docker.errors.APIError) as caught:
            c.remove()
        assert caught.value.status_code == 409
    finally:
        c.remove(force=True)


def test_images_and_events(client):
    image = client.images.get("busybox")
    assert "busybox:latest" in image.tags
    assert any("busybox:latest" in i.tags for i in client.images.list())
    image.tag("busybox", "pytag")
    assert "busybox:pytag" in client.images.get("busybox:pytag").tags
    client.images.remove("busybox:pytag")
    since = int(time.time()) - 1
    client.containers.run("busybox", "true", remove=True, name="py-evented")
    events = client.events(since=since, until=int(time.time()) + 1, decode=True,
                           filters={"container": "py-evented"})
    actions = [e["Action"] for e in events]
    assert "start" in actions and "die" in actions and "destroy" in actions


def test_the_containers_namespaces_differ_from_ours(client):
    c = client.containers.run("busybox", "sleep 1000", detach=True)
    try:
        c.reload()
        pid = c.attrs["State"]["Pid"]
        for kind in ("pid", "mnt", "uts", "ipc", "net"):
            assert os.readlink(f"/proc/{pid}/ns/{kind}") != os.readlink(f"/proc/self/ns/{kind}")
    finally:
        c.remove(force=True)


def test_stats_one_shot_and_streamed(client):
    c = client.containers.run("busybox", "sleep 1000", detach=True, mem_limit="32m")
    try:
        one = c.stats(stream=False, one_shot=True)
        assert one["id"] == c.id and one["memory_stats"]["limit"] == 32 << 20
        assert one["pids_stats"]["current"] == 1 and one["cpu_stats"]["online_cpus"] >= 1
        stream = c.stats(decode=True)
        first, second = next(stream), next(stream)
        assert second["precpu_stats"]["cpu_usage"]["total_usage"] == first["cpu_stats"]["cpu_usage"]["total_usage"]
        assert second["preread"] == first["read"]
    finally:
        c.remove(force=True)
    stopped = client.containers.create("busybox", "true")
    try:
        assert stopped.stats(stream=False)["read"] == "0001-01-01T00:00:00Z"
    finally:
        stopped.remove()


def _read_until_closed(raw, timeout: float = 10) -> bytes:
    raw.settimeout(timeout)
    data = b""
    while True:
        chunk = raw.recv(4096)
        if not chunk:
            return data
        data += chunk


def test_detach_keys_end_the_attach_and_leave_the_container_running(client):
    c = client.containers.create("busybox", "sh", tty=True, stdin_open=True)
    try:
        c.start()
        sock = c.attach_socket(params={"stdin": 1, "stdout": 1, "stream": 1, "detachKeys": "ctrl-a,x"})
        raw = sock._sock if hasattr(sock, "_sock") else sock
        raw.sendall(b"echo one$((1+1))\n")
        raw.settimeout(10)
        output = b""
        while b"one2" not in output:
            output += raw.recv(4096)
        raw.sendall(b"\x01x")
        _read_until_closed(raw)  # the daemon ends the stream
        c.reload()
        assert c.status == "running"
        sock = c.attach_socket(params={"stdin": 1, "stdout": 1, "stream": 1})  # default ctrl-p,ctrl-q
        raw = sock._sock if hasattr(sock, "_sock") else sock
        raw.sendall(b"\x10")  # a partial sequence is held, then passed on with what follows
        raw.sendall(b"echo back$((2+2)); exit 3\n")
        assert b"back4" in _read_until_closed(raw)
        assert c.wait()["StatusCode"] == 3
    finally:
        c.remove(force=True)
    with pytest.raises(docker.errors.APIError) as caught:
        client.api.exec_create(client.containers.run("busybox", "sleep 1000", detach=True, name="dk").id, "true",
                               detach_keys="ctrl-é")  # not a key docker knows
    assert caught.value.status_code == 400
    client.containers.get("dk").remove(force=True)


def test_attach_with_logs_replays_the_output_so_far(client):
    c = client.containers.run("busybox", ["sh", "-c", "echo before; echo oops >&2"], detach=True)
    try:
        c.wait()
        assert c.attach(stdout=True, stderr=True, logs=True, stream=False) == b"before\noops\n"
        assert c.attach(stdout=True, stderr=False, logs=True, stream=False) == b"before\n"
    finally:
        c.remove()


def test_exec_resize_reaches_the_exec_tty(client):
    c = client.containers.run("busybox", "sleep 1000", detach=True)
    try:
        exec_id = client.api.exec_create(c.id, "sh", tty=True, stdin=True)["Id"]
        sock = client.api.exec_start(exec_id, tty=True, socket=True)
        raw = sock._sock if hasattr(sock, "_sock") else sock
        client.api.exec_resize(exec_id, height=33, width=111)
        raw.sendall(b"stty size; exit\n")
        assert b"33 111" in _read_until_closed(raw)
    finally:
        c.remove(force=True)


def test_container_list_filters(client):
    """before/since (by creation), expose, publish, volume, is-task: as dockerd filters."""
    first = client.containers.create("busybox", "true", name="flt-first", ports={"80/tcp": 18081},
                                     volumes={"flt-vol": {"bind": "/data", "mode": "rw"}})
    second = client.containers.create("busybox", "true", name="flt-second")
    third = client.containers.create("busybox", "true", name="flt-third")
    try:
        def names(**filters):
            return sorted(c.name for c in client.containers.list(all=True, filters=filters)
                          if c.name.startswith("flt-"))
        assert names(before="flt-second") == ["flt-first"]
        assert names(since="flt-second") == ["flt-third"]
        assert names(expose="80") == ["flt-first"] and names(expose="80/udp") == []
        assert names(publish="18081") == ["flt-first"] and names(publish="80/tcp") == ["flt-first"]
        assert names(volume="flt-vol") == ["flt-first"] and names(volume="/data") == ["flt-first"]
        assert names(**{"is-task": "false"}) == ["flt-first", "flt-second", "flt-third"]
        assert names(label="nope") == []
    finally:
        for container in (first, second, third):
            container.remove(force=True)
        client.volumes.get("flt-vol").remove()


def test_the_local_log_driver(client):
    import docker

    c = client.containers.run("busybox", ["sh", "-c", "echo to-local; echo err >&2"], detach=True,
                              log_config=docker.types.LogConfig(type="local"))
    try:
        c.wait(timeout=30)
        assert c.logs(stdout=True, stderr=False) == b"to-local\n" and c.logs(stdout=False, stderr=True) == b"err\n"
        assert c.attrs["HostConfig"]["LogConfig"]["Type"] == "local"
    finally:
        c.remove(force=True)
    with pytest.raises(docker.errors.APIError, match="no log driver named 'syslog'"):
        client.containers.create("busybox", "true", log_config=docker.types.LogConfig(type="syslog"))
