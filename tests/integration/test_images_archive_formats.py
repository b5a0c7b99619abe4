"""Image archives across engines, through orlopd and the docker CLI: orlop's `docker save`
(Docker 25+'s format, docker-save archive and OCI layout at once) read by podman, skopeo and a
real dockerd (in a network namespace of its own), whose old-format save orlop loads;
archives written by skopeo and podman (docker-archive and oci-archive, gzip too) loaded by
orlop; `docker import` of a rootfs tar (file, stdin, --change, no name); hostile archives."""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import shutil
import signal
import subprocess
import tarfile
import time
import uuid

import pytest
from conftest import needs_root
from daemon_fixture import DOCKER, REPO, busybox_archive, running_daemon
from podman_fixture import PODMAN_ULIMITS, Podman

pytestmark = [needs_root, pytest.mark.skipif(not os.path.exists(DOCKER), reason="no docker CLI")]
PYTHON = os.path.join(REPO, ".venv", "bin", "python")
needs_podman = pytest.mark.skipif(not shutil.which("podman"), reason="no podman")
needs_skopeo = pytest.mark.skipif(not shutil.which("skopeo"), reason="no skopeo")


@pytest.fixture(scope="module")
def daemon():
    with running_daemon() as d:
        yield d


@pytest.fixture(scope="module")
def busybox_tar(tmp_path_factory) -> str:
    return busybox_archive(str(tmp_path_factory.mktemp("busybox")))


@pytest.fixture
def podman(tmp_path):
    engine = Podman(str(tmp_path))
    yield engine
    engine.cleanup()


def skopeo(*args: str) -> str:
    done = subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"skopeo {' '.join(args)}: {done.stderr}"
    return done.stdout


def tar_members(path: str) -> dict[str, bytes | None]:
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() if m.isreg() else None for m in tar}


def image_ids(daemon) -> list[str]:
    return sorted(daemon.docker("images", "-aq", "--no-trunc").stdout.split())


# -- orlop's save, read by the others -----------------------------------------------------------

def test_save_is_a_docker_archive_and_an_oci_layout(daemon, tmp_path):
    daemon.docker("tag", "busybox", "example.com/team/bb:1.0")
    try:
        saved = str(tmp_path / "saved.tar")
        daemon.docker("save", "-o", saved, "busybox", "example.com/team/bb:1.0")
        files = tar_members(saved)
        index = json.loads(files["index.json"])
        names = sorted(d["annotations"]["io.containerd.image.name"] for d in index["manifests"])
        assert names == ["docker.io/library/busybox:latest", "example.com/team/bb:1.0"]
        assert sorted(json.loads(files["manifest.json"])[0]["RepoTags"]) == ["busybox:latest",
                                                                             "example.com/team/bb:1.0"]
        assert len([n for n in files if n.startswith("blobs/sha256/")]) == 4  # config, 2 layers, manifest: once
        docker_view = json.loads(skopeo("inspect", f"docker-archive:{saved}:busybox:latest"))
        oci_view = json.loads(skopeo("inspect", f"oci-archive:{saved}:latest"))
        assert docker_view["Layers"] == oci_view["Layers"] and len(oci_view["Layers"]) == 2
        assert oci_view["Digest"] == index["manifests"][0]["digest"]
    finally:
        daemon.docker("rmi", "example.com/team/bb:1.0")


@needs_podman
def test_podman_loads_and_runs_what_orlop_saves(daemon, podman, tmp_path):
    saved = str(tmp_path / "bb.tar")
    daemon.docker("save", "-o", saved, "busybox")
    out = podman("load", "-i", saved).stdout
    assert "docker.io/library/busybox:latest" in out
    ran = podman("run", "--rm", "--network", "none", *PODMAN_ULIMITS, "busybox", "cat", "/etc/os-release").stdout
    assert "orlop test busybox" in ran


@needs_skopeo
def test_skopeo_copies_orlops_save_as_an_oci_layout(daemon, tmp_path):
    saved = str(tmp_path / "bb.tar")
    daemon.docker("save", "-o", saved, "busybox")
    skopeo("copy", "--quiet", f"oci-archive:{saved}:latest", f"dir:{tmp_path / 'dir'}")
    manifest = json.loads((tmp_path / "dir" / "manifest.json").read_text())
    assert [layer["mediaType"] for layer in manifest["layers"]] == ["application/vnd.oci.image.layer.v1.tar"] * 2


# -- the others' archives, loaded by orlop ------------------------------------------------------

def run_cat_os_release(daemon, name: str) -> str:
    return daemon.docker("run", "--rm", "--network", "none", name, "cat", "/etc/os-release").stdout


@needs_skopeo
@pytest.mark.parametrize("destination, name, shown", [
    ("oci-archive:{path}:localhost/skopeo/bb:oci", "localhost/skopeo/bb:oci", "localhost/skopeo/bb:oci"),
    ("docker-archive:{path}:skopeo/bb:docker", "skopeo/bb:docker", "skopeo/bb:docker"),
])
def test_skopeo_archives_load(daemon, busybox_tar, tmp_path, destination, name, shown):
    path = str(tmp_path / "skopeo.tar")
    skopeo("copy", "--quiet", f"docker-archive:{busybox_tar}", destination.format(path=path))
    assert daemon.docker("load", "-i", path).stdout == f"Loaded image: {shown}\n"
    try:
        assert "orlop test busybox" in run_cat_os_release(daemon, name)
    finally:
        daemon.docker("rmi", name)


@needs_skopeo
def test_gzip_compressed_oci_archive_without_a_name(daemon, busybox_tar, tmp_path):
    path = str(tmp_path / "plain.tar")
    skopeo("copy", "--quiet", f"docker-archive:{busybox_tar}", f"oci-archive:{path}")
    with open(path, "rb") as f, gzip.open(path + ".gz", "wb") as out:
        shutil.copyfileobj(f, out)
    loaded = daemon.docker("load", "-i", path + ".gz").stdout
    assert loaded.startswith("Loaded image ID: sha256:")
    image_id = loaded.split()[-1]
    assert "orlop test busybox" in run_cat_os_release(daemon, image_id)
    listed = daemon.docker("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}").stdout
    assert f"<none>:<none> {image_id[7:19]}" in listed
    daemon.docker("rmi", image_id)


@needs_podman
@pytest.mark.parametrize("fmt", ["oci-archive", "docker-archive"])
def test_podman_save_loads(daemon, podman, busybox_tar, tmp_path, fmt):
    podman("load", "-i", busybox_tar)
    podman("tag", "busybox", f"localhost/podman/bb:{fmt}")
    path = str(tmp_path / "podman.tar")
    podman("save", "--format", fmt, "-o", path, f"localhost/podman/bb:{fmt}")
    assert daemon.docker("load", "-i", path).stdout == f"Loaded image: localhost/podman/bb:{fmt}\n"
    try:
        assert "orlop test busybox" in run_cat_os_release(daemon, f"localhost/podman/bb:{fmt}")
    finally:
        daemon.docker("rmi", f"localhost/podman/bb:{fmt}")


# -- docker import ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def rootfs_tar(tmp_path_factory) -> str:
    """busybox's root filesystem as a plain tar, as `docker export` would give it."""
    base = tmp_path_factory.mktemp("rootfs")
    with tarfile.open(busybox_archive(str(base))) as saved:
        entry = json.load(saved.extractfile("manifest.json"))[0]
        layer = saved.extractfile(entry["Layers"][0]).read()
    path = str(base / "rootfs.tar")
    with open(path, "wb") as f:
        f.write(layer)
    return path


def test_docker_import_of_a_file_with_changes(daemon, rootfs_tar):
    out = daemon.docker("import", "-c", 'CMD ["sh", "-c", "echo A=$A"]', "-c", "ENV A=1", "-c", "WORKDIR /tmp",
                        "-m", "from a test", rootfs_tar, "imported:1").stdout
    assert out.startswith("sha256:") and len(out.strip()) == 71
    try:
        assert daemon.docker("run", "--rm", "--network", "none", "imported:1").stdout == "A=1\n"
        assert daemon.docker("run", "--rm", "--network", "none", "imported:1", "pwd").stdout == "/tmp\n"
        inspected = json.loads(daemon.docker("image", "inspect", "imported:1").stdout)[0]
        assert inspected["Id"] == out.strip() and len(inspected["RootFS"]["Layers"]) == 1
        history = daemon.docker("history", "--format", "{{.Comment}}", "imported:1").stdout
        assert history == "from a test\n"
    finally:
        daemon.docker("rmi", "imported:1")


def test_docker_import_from_stdin_gzip_and_without_a_name(daemon, rootfs_tar, tmp_path):
    with open(rootfs_tar, "rb") as f:
        compressed = gzip.compress(f.read())
    env = {**os.environ, "DOCKER_HOST": daemon.host}
    done = subprocess.run(f"gzip -c {rootfs_tar} | {DOCKER} import - piped", shell=True, capture_output=True,
                          text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    try:
        assert daemon.docker("run", "--rm", "--network", "none", "piped", "echo", "ok").stdout == "ok\n"
    finally:
        daemon.docker("rmi", "piped")
    (tmp_path / "rootfs.tar.gz").write_bytes(compressed)
    image_id = daemon.docker("import", str(tmp_path / "rootfs.tar.gz")).stdout.strip()
    assert image_id in image_ids(daemon)
    daemon.docker("tag", image_id, "named-later:1")
    assert daemon.docker("images", "--format", "{{.Repository}}", "--filter", "dangling=true").stdout.count(
        "<none>") == 0
    daemon.docker("rmi", "named-later:1")
    assert image_id not in image_ids(daemon)


def test_docker_import_errors_name_nothing(daemon, tmp_path):
    before = image_ids(daemon)
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"this is not a tar archive\n" * 100)
    done = daemon.docker("import", str(junk), "junk:1", check=False)
    assert done.returncode == 1 and "not a tar" in done.stderr
    done = daemon.docker("import", "-c", "RUN rm -rf /", str(junk), "junk:1", check=False)
    assert done.returncode == 1 and "run is not a valid change command" in done.stderr
    escape = tmp_path / "escape.tar"
    with tarfile.open(escape, "w") as tar:
        info = tarfile.TarInfo("../../../../tmp/orlop-import-escaped")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    done = daemon.docker("import", str(escape), "escape:1", check=False)
    assert done.returncode == 1 and ".." in done.stderr
    assert image_ids(daemon) == before and not os.path.exists("/tmp/orlop-import-escaped")


# -- hostile archives ---------------------------------------------------------------------------

def _hostile(busybox_tar: str, path: str, kind: str) -> str:
    files = tar_members(busybox_tar)
    entry = json.loads(files["manifest.json"])[0]
    with tarfile.open(path, "w") as tar:
        def add(name: str, data: bytes = b"", **attrs) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            for key, value in attrs.items():
                setattr(info, key, value)
            tar.addfile(info, io.BytesIO(data))
        for name, data in files.items():
            if data is not None and name != "manifest.json":
                add(name, data)
        if kind == "dotdot":
            add("../../../tmp/orlop-escaped", b"x")
        elif kind == "absolute":
            add("/tmp/orlop-escaped", b"x")
        elif kind == "symlink":
            add("evil/layer.tar", type=tarfile.SYMTYPE, linkname="../../../../etc/shadow")
            entry["Layers"][-1] = "evil/layer.tar"
        add("manifest.json", json.dumps([{**entry, "RepoTags": ["hostile:1"]}]).encode())
    return path


@pytest.mark.parametrize("kind, message", [("dotdot", "'..'"), ("absolute", "absolute path"),
                                           ("symlink", "leads out of the archive")])
def test_hostile_archives_are_refused(daemon, busybox_tar, tmp_path, kind, message):
    before = image_ids(daemon)
    path = _hostile(busybox_tar, str(tmp_path / "hostile.tar"), kind)
    done = daemon.docker("load", "-i", path, check=False)
    assert done.returncode == 1 and message in done.stderr and "invalid image archive" in done.stderr
    assert image_ids(daemon) == before
    assert daemon.docker("images", "-q", "hostile").stdout == ""
    assert not os.path.exists("/tmp/orlop-escaped")


def test_save_by_repository_and_by_id(daemon, tmp_path):
    """As dockerd: a repository without a tag saves all its tags, an ID saves the image unnamed."""
    daemon.docker("tag", "busybox", "busybox:second")
    try:
        by_repo = str(tmp_path / "repo.tar")
        daemon.docker("save", "-o", by_repo, "busybox")
        entry = json.loads(tar_members(by_repo)["manifest.json"])[0]
        assert sorted(entry["RepoTags"]) == ["busybox:latest", "busybox:second"]
        image_id = daemon.docker("image", "inspect", "-f", "{{.Id}}", "busybox").stdout.strip()
        by_id = str(tmp_path / "id.tar")
        daemon.docker("save", "-o", by_id, image_id[7:19])
        files = tar_members(by_id)
        assert json.loads(files["manifest.json"])[0]["RepoTags"] is None
        assert "annotations" not in json.loads(files["index.json"])["manifests"][0]
        done = daemon.docker("save", "-o", str(tmp_path / "x.tar"), "nosuchimage:1", check=False)
        assert done.returncode == 1 and "No such image" in done.stderr
    finally:
        daemon.docker("rmi", "busybox:second")


def test_docker_import_from_a_url(daemon, rootfs_tar, tmp_path):
    """fromSrc=<URL>: dockerd fetches the tar itself (here from a server in the daemon's netns)."""
    shutil.copy(rootfs_tar, tmp_path / "rootfs.tar")
    port = 18000 + os.getpid() % 1000
    server = subprocess.Popen(["nsenter", f"--net={daemon.netns_path}", "--", PYTHON, "-m", "http.server",
                               "--bind", "127.0.0.1", str(port), "--directory", str(tmp_path)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            if daemon.in_netns("bash", "-c", f"exec 3<>/dev/tcp/127.0.0.1/{port}").returncode == 0:
                break
            time.sleep(0.05)
        out = daemon.docker("import", f"http://127.0.0.1:{port}/rootfs.tar", "from-url:1").stdout
        lines = out.splitlines()   # as dockerd's: where from, then the ID
        assert lines[0] == f"Downloading from http://127.0.0.1:{port}/rootfs.tar" and lines[-1].startswith("sha256:")
        assert daemon.docker("run", "--rm", "--network", "none", "from-url:1", "echo", "ok").stdout == "ok\n"
        done = daemon.docker("import", f"http://127.0.0.1:{port}/missing.tar", "from-url:2", check=False)
        assert done.returncode == 1 and "404" in done.stderr
    finally:
        server.terminate()
        server.wait()
        daemon.docker("rmi", "from-url:1", check=False)


# -- a real dockerd (20.10), in a network namespace of its own --------------------------------------

@pytest.fixture(scope="module")
def dockerd(tmp_path_factory):
    if not shutil.which("dockerd"):
        pytest.skip("no dockerd")
    if os.path.exists("/run/containerd/containerd.sock"):
        pytest.skip("a system containerd runs: dockerd would use it")
    base = str(tmp_path_factory.mktemp("dockerd"))
    name = f"orlop-dockerd-{uuid.uuid4().hex[:8]}"
    exec_root, socket = f"/run/{name}", f"/run/{name}.sock"
    command = ["dockerd", "--data-root", os.path.join(base, "data"), "--exec-root", exec_root,
               "--pidfile", os.path.join(base, "docker.pid"), "-H", f"unix://{socket}", "--bridge=none",
               "--iptables=false", "--ip6tables=false", "--containerd-namespace", name,
               "--containerd-plugins-namespace", name + "-plugins"]
    log = open(os.path.join(base, "dockerd.log"), "wb")
    proc = subprocess.Popen(["unshare", "-n", *command], stdout=log, stderr=log, start_new_session=True)

    def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run([DOCKER, "--config", os.path.join(base, "cli"), "-H", f"unix://{socket}", *args],
                              capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        assert not check or done.returncode == 0, f"docker {args} -> dockerd: {done.stderr}"
        return done

    try:
        for _ in range(300):
            if proc.poll() is not None:
                pytest.skip(f"dockerd exited {proc.returncode}")
            if os.path.exists(socket) and docker("version", check=False).returncode == 0:
                break
            time.sleep(0.1)
        else:
            pytest.skip("dockerd did not start")
        yield docker
    finally:
        containerd = [int(p) for p in subprocess.run(["ps", "-o", "pid=", "--ppid", str(proc.pid)],
                                                     capture_output=True, text=True).stdout.split()]
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for pid in containerd:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        log.close()
        with open("/proc/self/mountinfo") as f:
            points = [line.split()[4] for line in f]
        for point in sorted((p for p in points if p.startswith((base, exec_root))), key=len, reverse=True):
            subprocess.run(["umount", "-l", point], capture_output=True)
        shutil.rmtree(exec_root, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(socket)


def test_dockerd_and_orlopd_load_each_others_saves(daemon, dockerd, tmp_path):
    ours = str(tmp_path / "orlop.tar")
    daemon.docker("save", "-o", ours, "busybox")
    assert dockerd("load", "-i", ours).stdout == "Loaded image: busybox:latest\n"
    image_id = daemon.docker("image", "inspect", "-f", "{{.Id}}", "busybox").stdout
    assert dockerd("image", "inspect", "-f", "{{.Id}}", "busybox").stdout == image_id, "the same image ID"
    dockerd("tag", "busybox", "from-dockerd:1")
    theirs = str(tmp_path / "dockerd.tar")   # 20.10: the old layout, <v1 id>/layer.tar
    dockerd("save", "-o", theirs, "from-dockerd:1")
    assert daemon.docker("load", "-i", theirs).stdout == "Loaded image: from-dockerd:1\n"
    try:
        assert daemon.docker("image", "inspect", "-f", "{{.Id}}", "from-dockerd:1").stdout == image_id
        assert "orlop test busybox" in run_cat_os_release(daemon, "from-dockerd:1")
    finally:
        daemon.docker("rmi", "from-dockerd:1")
