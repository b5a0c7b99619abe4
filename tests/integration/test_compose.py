"""docker-compose (v1, Debian's, over docker-py) against orlopd: a project built and started
with its network, named volume, published port and health check; services finding each
other by name; scale, exec, logs, ps; down -v leaving nothing behind."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest
from conftest import needs_root
from daemon_fixture import running_daemon

pytestmark = [needs_root, pytest.mark.skipif(not shutil.which("docker-compose"), reason="no docker-compose")]

COMPOSE_FILE = """\
version: "3.8"
services:
  web:
    build: ./web
    ports:
      - "18088:80"
    volumes:
      - data:/data
    healthcheck:
      test: ["CMD", "test", "-f", "/www/index.html"]
      interval: 1s
  client:
    image: busybox
    command: sh -c 'until wget -qO- http://web/; do sleep 0.2; done; echo "MODE=$$MODE"; sleep 300'
    depends_on:
      - web
    environment:
      - MODE=compose
volumes:
  data:
"""
WEB_DOCKERFILE = """\
FROM busybox
RUN mkdir /www && echo hello-from-web > /www/index.html
CMD ["httpd", "-f", "-p", "80", "-h", "/www"]
"""
HTTP_GET = "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())"


@pytest.fixture()
def project(tmp_path):
    (tmp_path / "web").mkdir()
    (tmp_path / "web" / "Dockerfile").write_text(WEB_DOCKERFILE)
    (tmp_path / "docker-compose.yml").write_text(COMPOSE_FILE)
    with running_daemon() as daemon:
        env = {**os.environ, "DOCKER_HOST": daemon.host, "COMPOSE_PROJECT_NAME": "demo"}

        def compose(*args: str, check: bool = True) -> subprocess.CompletedProcess:
            done = subprocess.run(["docker-compose", *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                                  timeout=300, stdin=subprocess.DEVNULL)
            if check and done.returncode != 0:
                raise AssertionError(f"docker-compose {' '.join(args)}: {done.stdout}{done.stderr}\n{daemon.log()}")
            return done

        try:
            yield daemon, compose
        finally:
            compose("down", "-v", check=False)


def wait_for(predicate, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError("timed out")


def test_a_compose_project_runs_and_goes(project):
    daemon, compose = project
    compose("up", "-d")
    rows = [line.split()[0] for line in compose("ps").stdout.splitlines()[2:]]
    assert rows == ["demo_client_1", "demo_web_1"]
    assert wait_for(lambda: "MODE=compose" in compose("logs", "client").stdout)
    assert "hello-from-web" in compose("logs", "client").stdout  # found `web` by its service name
    assert wait_for(lambda: "(healthy)" in compose("ps").stdout)
    page = daemon.in_netns(sys.executable, "-c", HTTP_GET, "http://127.0.0.1:18088/", capture_output=True,
                           text=True)
    assert page.stdout == "hello-from-web\n\n"
    assert compose("exec", "-T", "web", "cat", "/www/index.html").stdout == "hello-from-web\n"
    compose("up", "-d", "--scale", "client=2")
    assert sorted(line.split()[0] for line in compose("ps").stdout.splitlines()[2:]) == \
        ["demo_client_1", "demo_client_2", "demo_web_1"]
    assert "demo_default" in daemon.docker("network", "ls", "--format", "{{.Name}}").stdout.split()
    assert "demo_data" in daemon.docker("volume", "ls", "-q").stdout.split()
    compose("down", "-v")
    assert daemon.docker("ps", "-aq").stdout == ""
    assert "demo_default" not in daemon.docker("network", "ls", "--format", "{{.Name}}").stdout.split()
    assert "demo_data" not in daemon.docker("volume", "ls", "-q").stdout.split()
