"""orlopd's daemon.json, read as dockerd reads its own: unknown keys and flag conflicts refused
with dockerd's words, the container defaults applied to new containers (log driver and
options, DNS, ulimits, /dev/shm, no-new-privileges, cgroup parent), engine labels, a pid
file, and registry mirrors asked first for Docker Hub's images."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile

import pytest
from conftest import needs_root
from daemon_fixture import DOCKER, ORLOPD, Daemon
from registry_fixture import LocalRegistry

pytestmark = [needs_root, pytest.mark.skipif(not os.path.exists(DOCKER), reason="no docker CLI")]


def refused(config: dict, *flags: str) -> str:
    with tempfile.TemporaryDirectory() as base:
        path = os.path.join(base, "daemon.json")
        with open(path, "w") as f:
            json.dump(config, f)
        done = subprocess.run([ORLOPD, "--config-file", path, "--data-root", os.path.join(base, "data"),
                               "--exec-root", os.path.join(base, "run"), *flags],
                              capture_output=True, text=True, timeout=30)
    assert done.returncode != 0
    return done.stderr


def test_unknown_keys_and_conflicts_are_refused_as_dockerd_refuses_them():
    assert "the following directives don't match any configuration option: bogus-key" in refused({"bogus-key": 1})
    conflict = refused({"log-level": "warn"}, "--log-level", "error")
    assert "specified both as a flag and in the configuration file: log-level: (from flag: error, from file: warn)" \
        in conflict
    assert "storage-driver 'devicemapper'" in refused({"storage-driver": "devicemapper"})
    assert "log-driver 'splunk'" in refused({"log-driver": "splunk"})


@pytest.fixture()
def configured(tmp_path):
    config = tmp_path / "daemon.json"
    daemon = Daemon(str(tmp_path / "data"), config_file=str(config))
    (tmp_path / "data").mkdir()
    registry = None
    try:
        config.write_text("{}")
        daemon.start()
        daemon.load_busybox(str(tmp_path))
        if shutil.which("docker-registry"):
            (tmp_path / "registry").mkdir()
            registry = LocalRegistry(str(tmp_path / "registry"), netns=daemon.netns_path)
        yield daemon, config, registry, tmp_path
    finally:
        if registry is not None:
            registry.stop()
        daemon.cleanup()


def test_container_defaults_labels_pidfile_and_mirrors(configured):
    daemon, config, registry, tmp_path = configured
    if registry is not None:  # an image only the mirror has, under Docker Hub's name
        daemon.docker("tag", "busybox", f"{registry.host}/library/only-on-the-mirror:1")
        daemon.docker("push", f"{registry.host}/library/only-on-the-mirror:1")
    daemon.stop()
    pidfile = tmp_path / "orlopd.pid"
    config.write_text(json.dumps({
        "log-opts": {"max-size": "1k", "max-file": "2"}, "dns": ["192.0.2.53"], "dns-search": ["corp.example"],
        "default-ulimits": {"nofile": {"Name": "nofile", "Hard": 4096, "Soft": 2048}}, "default-shm-size": "32M",
        "no-new-privileges": True, "cgroup-parent": "orlop-tests", "labels": ["team=orlop"],
        "pidfile": str(pidfile), "live-restore": True, "userland-proxy": False,
        "registry-mirrors": [f"http://{registry.host}"] if registry else []}))
    daemon.start()
    assert pidfile.read_text().strip() == str(daemon.proc.pid)  # nsenter execs orlopd: the same pid
    out = daemon.docker("run", "--rm", "busybox", "sh", "-c",
                        "cat /etc/resolv.conf; ulimit -n; ulimit -Hn; df -k /dev/shm | tail -1; "
                        "grep NoNewPrivs /proc/self/status; cat /proc/self/cgroup | grep memory").stdout
    assert "nameserver 192.0.2.53" in out and "search corp.example" in out
    lines = out.splitlines()
    assert "2048" in lines and "4096" in lines
    assert " 32768 " in out and "NoNewPrivs:\t1" in out and "/orlop-tests/" in out
    own = daemon.docker("run", "--rm", "--ulimit", "nofile=100:200", "--dns", "192.0.2.99", "busybox", "sh", "-c",
                        "ulimit -n; grep nameserver /etc/resolv.conf").stdout  # a container's own win
    assert own == "100\nnameserver 192.0.2.99\n"
    cid = daemon.docker("run", "-d", "busybox", "true").stdout.strip()
    daemon.docker("wait", cid)
    log_config = json.loads(daemon.docker("inspect", "-f", "{{json .HostConfig.LogConfig}}", cid).stdout)
    assert log_config == {"Type": "json-file", "Config": {"max-size": "1k", "max-file": "2"}}
    info = json.loads(daemon.docker("info", "--format", "{{json .}}").stdout)
    assert info["Labels"] == ["team=orlop"]
    assert any("userland-proxy is accepted but not acted on" in w for w in info.get("Warnings") or [])
    if registry is not None:
        assert info["RegistryConfig"]["Mirrors"] == [f"http://{registry.host}/"]
        pulled = daemon.docker("pull", "only-on-the-mirror:1")  # Docker Hub cannot be reached here
        assert "Downloaded newer image for only-on-the-mirror:1" in pulled.stdout
        assert daemon.docker("run", "--rm", "only-on-the-mirror:1", "echo", "mirrored").stdout == "mirrored\n"
