"""Malformed requests to orlopd: every one answered with a 4xx and a {"message": …} that
says what was wrong, never a 500 (a bug) nor a stream broken half-way, and the daemon
keeps serving."""

from __future__ import annotations

import http.client
import json
import socket

import pytest
from conftest import needs_root
from daemon_fixture import running_daemon

pytestmark = [needs_root]

BODIES = [b"{", b"[]", b"null", b'"x"', b"123", b'{"Image": 5}', b'{"Image": "busybox", "Cmd": 5}',
          b'{"Image": "busybox", "HostConfig": []}', b'{"Image": "busybox", "HostConfig": {"Memory": "x"}}',
          b'{"Image": "busybox", "Env": [1]}', b'{"Image": "busybox", "HostConfig": {"PortBindings": {"80/tcp": "x"}}}',
          b'{"Image": "busybox", "HostConfig": {"Binds": "x"}}', b'{"Image": "busybox", "Labels": []}',
          b'{"Image": "busybox", "ExposedPorts": {"abc": {}}}',
          b'{"Image": "busybox", "HostConfig": {"Mounts": [{"Type": "bogus"}]}}',
          b'{"Image": "busybox", "HostConfig": {"Mounts": [{}]}}',
          b'{"Image": "busybox", "HostConfig": {"RestartPolicy": "x"}}',
          b'{"Image": "busybox", "NetworkingConfig": {"EndpointsConfig": []}}',
          b'{"Image": "busybox", "HostConfig": {"Ulimits": [{"Name": 1}]}}',
          b'{"Image": "busybox", "HostConfig": {"Devices": [{"PathOnHost": 5}]}}',
          b'{"Image": "busybox", "Healthcheck": {"Test": "x"}}']
WITH_BODY = [("POST", "/containers/create"), ("POST", "/containers/target/exec"), ("POST", "/networks/create"),
             ("POST", "/volumes/create"), ("POST", "/containers/target/update"), ("POST", "/commit?container=target"),
             ("POST", "/networks/bridge/connect"), ("POST", "/exec/nope/start"), ("POST", "/auth")]
WITHOUT_BODY = [("POST", "/containers/target/wait?condition=bogus"), ("POST", "/containers/target/kill?signal=BOGUS"),
                ("POST", "/containers/target/resize?h=x"), ("GET", "/containers/json?filters=%7B"),
                ("GET", "/containers/target/logs?since=garbage&stdout=1"),
                ("GET", "/images/json?filters=%7B%22bogus%22%3A%5B%22x%22%5D%7D"), ("POST", "/build?buildargs=%7B"),
                ("GET", "/containers/target/archive?path="), ("PUT", "/containers/target/archive?path=/tmp"),
                ("POST", "/images/load"), ("GET", "/events?since=garbage"), ("GET", "/images/search?term=x&limit=0"),
                ("GET", "/containers/json?limit=x"), ("DELETE", "/images/nosuch%2Fimage")]


class _Unix(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=30)
        self.unix_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(self.unix_path)


@pytest.fixture(scope="module")
def daemon():
    with running_daemon() as d:
        d.docker("run", "-d", "--name", "target", "busybox", "sleep", "600")
        yield d


def ask(daemon, method: str, path: str, body: bytes | None) -> tuple[int, bytes]:
    conn = _Unix(daemon.host[len("unix://"):])
    try:
        conn.request(method, "/v1.45" + path, body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@pytest.mark.parametrize("method, path", WITH_BODY)
def test_malformed_bodies_are_4xx_with_a_message(daemon, method, path):
    for body in BODIES:
        status, data = ask(daemon, method, path, body)
        assert 400 <= status < 500 or status < 300, (body, status, data)
        if status >= 400:
            assert json.loads(data)["message"], (body, data)


@pytest.mark.parametrize("method, path", WITHOUT_BODY)
def test_malformed_parameters_are_4xx_before_any_stream(daemon, method, path):
    status, data = ask(daemon, method, path, None)
    assert 400 <= status < 500, (status, data)
    assert json.loads(data)["message"]


def test_the_daemon_still_serves(daemon):
    assert daemon.docker("run", "--rm", "busybox", "echo", "fine").stdout == "fine\n"
    assert "Traceback" not in daemon.log()
