"""`login`: credentials checked by the registry (htpasswd basic auth on Debian's
docker-registry, and the Bearer flow), then filed where the docker CLI files them
and used by the next pull; a refused login stores nothing."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import stat

import pytest
from image_archive import make_docker_archive
from registry_fixture import LocalRegistry

from orlop.images import login as login_mod
from orlop.images.content import ContentStore
from orlop.images.pull import pull
from orlop.images.reference import parse
from orlop.images.store import ImageStore


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory, rootfs_template):
    reg = LocalRegistry(str(tmp_path_factory.mktemp("login-registry")), users={"alice": "s3cret"})
    archive = make_docker_archive(rootfs_template, str(tmp_path_factory.mktemp("img") / "bb.tar"), "busybox:test")
    reg.push_archive(archive, "team/bb:1")
    yield reg
    reg.stop()


@pytest.fixture
def docker_config(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    return tmp_path / "docker" / "config.json"


def test_login_files_credentials_and_pull_uses_them(auth_registry, docker_config, tmp_path):
    assert asyncio.run(login_mod.login(auth_registry.host, "alice", "s3cret")) == "Login Succeeded"
    config = json.loads(docker_config.read_text())
    assert base64.b64decode(config["auths"][auth_registry.host]["auth"]) == b"alice:s3cret"
    assert stat.S_IMODE(os.stat(docker_config).st_mode) == 0o600
    record = asyncio.run(pull(parse(f"{auth_registry.host}/team/bb:1"), ContentStore(str(tmp_path / "c")),
                              ImageStore(str(tmp_path / "i"))))
    assert record.config.startswith("sha256:")
    assert login_mod.logout(auth_registry.host) is True
    assert auth_registry.host not in json.loads(docker_config.read_text())["auths"]


def test_refused_login_stores_nothing(auth_registry, docker_config):
    with pytest.raises(login_mod.LoginError, match="incorrect username or password"):
        asyncio.run(login_mod.login(auth_registry.host, "alice", "wrong"))
    assert not docker_config.exists()
    with pytest.raises(login_mod.LoginError, match="Password Required"):
        asyncio.run(login_mod.login(auth_registry.host, "alice", ""))


def test_login_with_a_credential_helper(auth_registry, docker_config, tmp_path, monkeypatch):
    """credsStore: the secret goes to docker-credential-<name>, config.json keeps an empty entry."""
    bin_dir, vault = tmp_path / "bin", tmp_path / "vault.json"
    bin_dir.mkdir()
    helper = bin_dir / "docker-credential-testvault"
    helper.write_text(f"""#!/bin/sh
case "$1" in
  store) cat > {vault} ;;
  get) read server; cat {vault} ;;
  erase) rm -f {vault} ;;
esac
""")
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    docker_config.parent.mkdir(parents=True)
    docker_config.write_text(json.dumps({"credsStore": "testvault"}))
    asyncio.run(login_mod.login(auth_registry.host, "alice", "s3cret"))
    assert json.loads(vault.read_text()) == {"ServerURL": auth_registry.host, "Username": "alice", "Secret": "s3cret"}
    assert json.loads(docker_config.read_text())["auths"][auth_registry.host] == {}
    record = asyncio.run(pull(parse(f"{auth_registry.host}/team/bb:1"), ContentStore(str(tmp_path / "c")),
                              ImageStore(str(tmp_path / "i"))))
    assert record.manifest


def test_docker_hub_aliases_share_one_key():
    for server in (None, "", "docker.io", "index.docker.io", "https://index.docker.io/v1/"):
        assert login_mod.server_key(server) == ("docker.io", "https://index.docker.io/v1/")
    assert login_mod.server_key("https://reg.example:5000/") == ("reg.example:5000", "reg.example:5000")
