"""Volumes through the docker CLI and docker-py: named volumes outliving their containers,
copy-up of the image's content, anonymous volumes from VOLUME, read-only binds, in-use
refusal, rm -v, prune."""

from __future__ import annotations

import json
import os

import pytest
from conftest import needs_root
from daemon_fixture import DOCKER, running_daemon

pytestmark = [needs_root, pytest.mark.skipif(not os.path.exists(DOCKER), reason="no docker CLI")]


@pytest.fixture(scope="module")
def daemon():
    with running_daemon() as d:
        yield d


def test_named_volume_outlives_its_container(daemon):
    daemon.docker("volume", "create", "--label", "app=db", "data")
    daemon.docker("run", "--rm", "-v", "data:/data", "busybox", "sh", "-c", "echo persisted > /data/f")
    assert daemon.docker("run", "--rm", "-v", "data:/data:ro", "busybox", "cat", "/data/f").stdout == "persisted\n"
    done = daemon.docker("run", "--rm", "-v", "data:/data:ro", "busybox", "touch", "/data/g", check=False)
    assert done.returncode != 0 and "Read-only file system" in done.stderr
    info = json.loads(daemon.docker("volume", "inspect", "data").stdout)[0]
    assert info["Labels"] == {"app": "db"} and info["Driver"] == "local"
    assert "data" in daemon.docker("volume", "ls", "--filter", "label=app=db", "-q").stdout.split()
    daemon.docker("volume", "rm", "data")


def test_a_new_volume_is_filled_from_the_image_and_used_volumes_are_kept(daemon):
    daemon.docker("run", "-d", "--name", "user", "-v", "etcvol:/etc", "busybox", "sleep", "1000")
    try:
        assert "ID=orlop-busybox" in daemon.docker("exec", "user", "cat", "/etc/os-release").stdout
        done = daemon.docker("volume", "rm", "etcvol", check=False)
        assert done.returncode != 0 and "volume is in use" in done.stderr
    finally:
        daemon.docker("rm", "-f", "user")
    daemon.docker("volume", "rm", "etcvol")


def test_anonymous_volumes_from_volume_and_rm_v(daemon, tmp_path):
    os.environ["DOCKER_BUILDKIT"] = "0"
    (tmp_path / "Dockerfile").write_text("FROM busybox\nRUN mkdir /state && echo seeded > /state/s\n"
                                         "VOLUME /state\n")
    daemon.docker("build", "-t", "withvol:1", str(tmp_path))
    daemon.docker("run", "--name", "anon", "withvol:1", "cat", "/state/s")
    mounts = json.loads(daemon.docker("inspect", "-f", "{{json .Mounts}}", "anon").stdout)
    assert len(mounts) == 1 and mounts[0]["Type"] == "volume" and mounts[0]["Destination"] == "/state"
    name = mounts[0]["Name"]
    assert daemon.docker("logs", "anon").stdout == "seeded\n"
    daemon.docker("rm", "-v", "anon")
    assert name not in daemon.docker("volume", "ls", "-q").stdout.split()


def test_bind_mount_read_only_and_mount_syntax(daemon, tmp_path):
    (tmp_path / "host.txt").write_text("from host\n")
    out = daemon.docker("run", "--rm", "-v", f"{tmp_path}:/h:ro", "busybox", "sh", "-c",
                        "cat /h/host.txt; touch /h/x 2>&1 || true").stdout
    assert out.startswith("from host\n") and "Read-only file system" in out
    out = daemon.docker("run", "--rm", "--mount", "type=volume,source=mvol,target=/m", "--mount",
                        "type=tmpfs,target=/t", "busybox", "sh", "-c", "echo ok > /m/f && mount | grep -c ' /t '"
                        ).stdout
    assert out.strip() == "1"
    daemon.docker("volume", "rm", "mvol")


def test_prune_and_docker_py(daemon):
    client = daemon.client()
    try:
        volume = client.volumes.create("pyvol", labels={"k": "v"})
        assert client.volumes.get("pyvol").attrs["Labels"] == {"k": "v"}
        client.containers.run("busybox", "sh -c 'echo hi > /v/f'", volumes={"pyvol": {"bind": "/v", "mode": "rw"}},
                              remove=True)
        anonymous = client.volumes.create()
        pruned = client.volumes.prune()
        assert anonymous.name in (pruned["VolumesDeleted"] or [])
        assert "pyvol" not in (pruned["VolumesDeleted"] or [])
        volume.remove()
        with pytest.raises(Exception) as caught:
            client.volumes.get("pyvol")
        assert "no such volume" in str(caught.value)
    finally:
        client.close()


def test_volumes_from_shares_volumes_and_binds_with_their_modes(daemon, tmp_path):
    host_dir = tmp_path / "shared"
    host_dir.mkdir()
    daemon.docker("create", "--name", "vf-source", "-v", "vf-data:/data", "-v", f"{host_dir}:/host",
                  "busybox", "true")
    try:
        daemon.docker("run", "--rm", "--volumes-from", "vf-source", "busybox", "sh", "-c",
                      "echo from-volume > /data/f && echo from-bind > /host/g")
        assert (host_dir / "g").read_text() == "from-bind\n"
        out = daemon.docker("run", "--rm", "--volumes-from", "vf-source:ro", "busybox", "sh", "-c",
                            "cat /data/f; touch /data/x 2>/dev/null || echo refused").stdout
        assert out == "from-volume\nrefused\n"
        mounts = json.loads(daemon.docker("create", "--volumes-from", "vf-source:ro", "busybox",
                                          "true").stdout and daemon.docker(
            "inspect", "-f", "{{json .Mounts}}", daemon.docker("ps", "-lq").stdout.strip()).stdout)
        assert {m["Destination"]: m["RW"] for m in mounts} == {"/data": False, "/host": False}
        # A 404, as dockerd answers (on which the docker CLI, like with dockerd, tries a pull).
        api = daemon.client().api
        for source, message in (("no-such-container", "No such container: no-such-container"),
                                ("vf-source:rx", "invalid mode for volumes-from: rx")):
            with pytest.raises(Exception) as caught:
                api.create_container("busybox", "true",
                                     host_config=api.create_host_config(volumes_from=[source]))
            assert message in str(caught.value)
        assert daemon.docker("volume", "rm", "vf-data", check=False).returncode != 0  # in use
    finally:
        daemon.docker("rm", "-f", *daemon.docker("ps", "-aq").stdout.split(), check=False)
        daemon.docker("volume", "rm", "vf-data", check=False)
