"""The image endpoints of orlopd through the docker CLI: push to and pull from a local
registry (plain and with basic auth via `docker login`), tag, history, rmi, save/load,
prune, and the progress stream the CLI renders."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from conftest import needs_root
from daemon_fixture import DOCKER, running_daemon
from registry_fixture import LocalRegistry

pytestmark = [needs_root, pytest.mark.skipif(not os.path.exists(DOCKER), reason="no docker CLI"),
              pytest.mark.skipif(not shutil.which("docker-registry"), reason="no docker-registry")]


@pytest.fixture(scope="module")
def daemon():
    with running_daemon() as d:
        yield d


@pytest.fixture(scope="module")
def registry(tmp_path_factory, daemon):
    reg = LocalRegistry(str(tmp_path_factory.mktemp("daemon-registry")), netns=daemon.netns_path)
    yield reg
    reg.stop()


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory, daemon):
    reg = LocalRegistry(str(tmp_path_factory.mktemp("daemon-auth-registry")), users={"alice": "s3cret"},
                        netns=daemon.netns_path)
    yield reg
    reg.stop()


def test_push_rmi_pull_run(daemon, registry):
    name = f"{registry.host}/team/busybox:1"
    daemon.docker("tag", "busybox", name)
    pushed = daemon.docker("push", name).stdout
    assert "1: digest: sha256:" in pushed
    digest = pushed.split("digest: ")[1].split()[0]
    again = daemon.docker("push", name).stdout
    assert "Layer already exists" in again
    daemon.docker("rmi", name)
    assert daemon.docker("images", "-q", name).stdout == ""
    pulled = daemon.docker("pull", name).stdout
    assert f"Digest: {digest}" in pulled and f"Downloaded newer image for {name}" in pulled
    assert daemon.docker("pull", name).stdout.count("Image is up to date") == 1
    assert daemon.docker("run", "--rm", name, "cat", "/etc/os-release").stdout.startswith("PRETTY_NAME")
    by_digest = f"{registry.host}/team/busybox@{digest}"
    daemon.docker("pull", by_digest)
    repo_digests = json.loads(daemon.docker("image", "inspect", name).stdout)[0]["RepoDigests"]
    assert by_digest in repo_digests
    daemon.docker("rmi", name, by_digest)
    # what the registry holds, without pulling (docker-py's get_registry_data)
    client = daemon.client()
    try:
        data = client.images.get_registry_data(name)
        assert data.id == digest and data.attrs["Platforms"][0]["os"] == "linux"
        assert data.has_platform("linux/amd64") == (data.attrs["Platforms"][0]["architecture"] == "amd64")
        with pytest.raises(Exception, match="not found"):
            client.images.get_registry_data(f"{registry.host}/team/busybox:no-such-tag")
    finally:
        client.close()
    assert daemon.docker("images", "-q", name).stdout == ""  # nothing was pulled


def test_pull_errors_are_clear(daemon, registry):
    done = daemon.docker("pull", f"{registry.host}/nobody/nothing:1", check=False)
    assert done.returncode == 1 and ("not found" in done.stderr or "unknown" in done.stderr)
    done = daemon.docker("pull", "Invalid//Name", check=False)
    assert done.returncode == 1 and "invalid reference format" in done.stderr


def test_login_then_push_and_pull_with_basic_auth(daemon, auth_registry):
    name = f"{auth_registry.host}/private/busybox:1"
    daemon.docker("tag", "busybox", name)
    denied = daemon.docker("push", name, check=False)
    assert denied.returncode == 1 and ("no basic auth credentials" in denied.stderr or
                                       "unauthorized" in denied.stderr.lower())
    bad = daemon.docker("login", "-u", "alice", "--password-stdin", auth_registry.host, input="wrong\n",
                        check=False)
    assert bad.returncode == 1 and "incorrect username or password" in bad.stderr
    daemon.docker("login", "-u", "alice", "--password-stdin", auth_registry.host, input="s3cret\n")
    daemon.docker("push", name)
    daemon.docker("rmi", name)
    daemon.docker("pull", name)
    daemon.docker("rmi", name)
    daemon.docker("logout", auth_registry.host)


def test_tag_history_inspect_save_load(daemon, tmp_path):
    daemon.docker("tag", "busybox", "copy:v1")
    inspected = json.loads(daemon.docker("image", "inspect", "copy:v1").stdout)[0]
    assert "copy:v1" in inspected["RepoTags"] and inspected["Os"] == "linux"
    history = daemon.docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", "copy:v1").stdout.splitlines()
    assert len(history) == 2 and all(line == "tests/image_archive.py" for line in history)
    archive = str(tmp_path / "copy.tar")
    daemon.docker("save", "-o", archive, "copy:v1")
    daemon.docker("rmi", "copy:v1")
    loaded = daemon.docker("load", "-i", archive).stdout
    assert "Loaded image: copy:v1" in loaded
    assert daemon.docker("run", "--rm", "copy:v1", "echo", "loaded").stdout == "loaded\n"
    daemon.docker("rmi", "copy:v1")


def test_rmi_refuses_an_image_in_use_unless_forced_and_prune(daemon):
    daemon.docker("tag", "busybox", "inuse:1")
    daemon.docker("create", "--name", "user-of-inuse", "inuse:1", "true")
    daemon.docker("tag", "busybox", "other:1")
    done = daemon.docker("rmi", "inuse:1", check=False)
    # another tag of the same image exists: Docker untags instead of refusing
    assert done.returncode == 0 and "Untagged: inuse:1" in done.stdout
    daemon.docker("rmi", "other:1")
    done = daemon.docker("rmi", "busybox", check=False)
    assert done.returncode == 1 and "conflict" in done.stderr.lower()
    daemon.docker("rm", "user-of-inuse")
    out = daemon.docker("image", "prune", "-f").stdout
    assert "Total reclaimed space" in out
    assert daemon.docker("images", "-q", "busybox").stdout.strip() != ""  # tagged images stay


def test_pull_progress_ends_with_digest_and_status_once(daemon, registry):
    name = f"{registry.host}/team/progress:1"
    daemon.docker("tag", "busybox", name)
    daemon.docker("push", name)
    daemon.docker("rmi", name)
    lines = daemon.docker("pull", name).stdout.splitlines()
    assert lines[-3].startswith("Digest: sha256:") and lines[-2].startswith("Status: ")
    assert lines[-1] == name
    layer_lines = [line for line in lines if ": " in line and not line.startswith(("Digest", "Status"))]
    assert len(layer_lines) == len(set(layer_lines))  # each layer reported once
    daemon.docker("rmi", name)


def test_image_list_filters(daemon):
    daemon.docker("tag", "busybox", "filtered/one:1")
    daemon.docker("tag", "busybox", "filtered/two:1")
    try:
        out = daemon.docker("images", "--format", "{{.Repository}}:{{.Tag}}", "--filter",
                            "reference=filtered/*").stdout.split()
        assert sorted(out) == ["filtered/one:1", "filtered/two:1"]
        assert daemon.docker("images", "-q", "--filter", "dangling=true").stdout == ""
        done = daemon.docker("images", "--filter", "colour=blue", check=False)
        assert done.returncode != 0 and "invalid filter" in done.stderr
    finally:
        daemon.docker("rmi", "filtered/one:1", "filtered/two:1")


def _blobs(daemon) -> set[str]:
    root = os.path.join(daemon.data_root, "content", "blobs", "sha256")
    return set(os.listdir(root)) if os.path.isdir(root) else set()


def _snapshots(daemon) -> set[str]:
    with open(os.path.join(daemon.data_root, "snapshots", "metadata.json")) as f:
        return set(json.load(f)["snapshots"])


def test_prune_and_rmi_remove_images_and_free_their_layers(tmp_path):
    """image prune takes dangling images (-a: every unused one), rmi and prune free the blobs
    and snapshots only those images used; builder prune forgets the step cache; system
    prune runs it all."""
    with running_daemon() as d:
        os.environ["DOCKER_BUILDKIT"] = "0"
        try:
            ctx = tmp_path / "ctx"
            ctx.mkdir()
            (ctx / "Dockerfile").write_text("FROM busybox\nRUN echo one > /layer\nLABEL keep=no\n")
            d.docker("build", "-t", "app:1", str(ctx))
            (ctx / "Dockerfile").write_text("FROM busybox\nRUN echo two > /layer\nLABEL keep=no\n")
            d.docker("build", "-t", "app:1", str(ctx))  # app:1 moves: the first image is dangling
            assert len(d.docker("images", "-q", "--filter", "dangling=true").stdout.split()) == 1
            d.docker("create", "--name", "user", "busybox", "true")
            before = _blobs(d), _snapshots(d)
            out = d.docker("image", "prune", "-f").stdout
            assert out.startswith("Deleted Images:\ndeleted: sha256:") and "app:1" not in out
            assert d.docker("images", "-q", "--filter", "dangling=true").stdout == ""
            after = _blobs(d), _snapshots(d)
            assert after[0] < before[0] and after[1] < before[1]  # its layer and snapshot went
            out = d.docker("image", "prune", "-af", "--filter", "label=keep=no").stdout
            assert "untagged: app:1" in out and "busybox" not in out  # busybox is in use
            assert d.docker("images", "--format", "{{.Repository}}").stdout.split() == ["busybox"]
            d.docker("rm", "user")
            d.docker("rmi", "busybox")
            assert _snapshots(d) == set()
            assert _blobs(d)  # the build steps' configs, kept by the step cache only
            assert d.docker("builder", "prune", "-f").returncode == 0
            assert _blobs(d) == set()
            assert "Total reclaimed space" in d.docker("system", "prune", "-af", "--volumes").stdout
        finally:
            os.environ.pop("DOCKER_BUILDKIT", None)


SEARCH_INDEX = r"""
import http.server, json, sys, urllib.parse
class Index(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        if url.path != "/v1/search":
            self.send_response(404); self.end_headers(); return
        query = urllib.parse.parse_qs(url.query)
        results = [{"name": n, "description": f"the {n} image", "star_count": s, "is_official": o,
                    "is_automated": False} for n, s, o in (("busybox", 3000, True), ("busy/tools", 2, False),
                                                           ("other", 9, False)) if query["q"][0] in n]
        body = json.dumps({"num_results": len(results), "query": query["q"][0], "results": results}).encode()
        self.send_response(200); self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Index).serve_forever()
"""


def test_search_asks_the_index_the_term_names(daemon):
    import subprocess
    import sys
    import time

    port = 18765
    server = subprocess.Popen(["nsenter", f"--net={daemon.netns_path}", "--", sys.executable, "-c", SEARCH_INDEX,
                               str(port)])
    try:
        time.sleep(0.5)
        rows = [line.split() for line in daemon.docker("search", f"localhost:{port}/busy").stdout.splitlines()]
        assert rows[0][:2] == ["NAME", "DESCRIPTION"]
        assert [r[0] for r in rows[1:]] == ["busybox", "busy/tools"]
        official = daemon.docker("search", "--filter", "is-official=true", "--format", "{{.Name}} {{.StarCount}}",
                                 f"localhost:{port}/busy").stdout
        assert official == "busybox 3000\n"
        assert daemon.docker("search", "--filter", "stars=10", "--format", "{{.Name}}",
                             f"localhost:{port}/b").stdout == "busybox\n"
        orlop = subprocess.run([os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
            os.path.abspath(__file__)))), ".venv", "bin", "orlop"), "-H", daemon.host, "search",
            f"localhost:{port}/busy"], capture_output=True, text=True, timeout=30)
        assert orlop.stdout == daemon.docker("search", f"localhost:{port}/busy").stdout
        bad = daemon.docker("search", "--limit", "500", f"localhost:{port}/busy", check=False)
        assert bad.returncode == 1 and "Limit 500 is outside the range of [1, 100]" in bad.stderr
    finally:
        server.kill()
        server.wait()
    gone = daemon.docker("search", f"localhost:{port}/busy", check=False)
    assert gone.returncode == 1 and f"localhost:{port}" in gone.stderr
