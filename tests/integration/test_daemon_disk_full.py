"""orlopd on a full disk: its data root a small tmpfs of the test's own, driven past full by
the docker CLI and docker-py (load, pull, build, run, commit, cp, volumes, create). Each
time the client gets an error that says what could not be written, the daemon goes on
answering, nothing half-made is left in the data root (checked by walking it), and once
space is freed through the API the same operation succeeds."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest
from busybox_bundle import make_rootfs
from conftest import needs_root
from daemon_fixture import DOCKER, Daemon
from image_archive import make_docker_archive

pytestmark = [needs_root, pytest.mark.skipif(not os.path.exists(DOCKER), reason="no docker CLI")]

MiB = 1 << 20
NO_SPACE = "no space left on device"


# -- a daemon on a small filesystem ---------------------------------------------------------------

@contextlib.contextmanager
def small_daemon(size_mb: int = 64):
    """An orlopd whose data root is a tmpfs of `size_mb` MiB (unmounted afterwards), with busybox."""
    base = tempfile.mkdtemp(prefix="orlopd-diskfull-")
    data = os.path.join(base, "data")
    os.makedirs(data)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0711", "tmpfs", data], check=True)
    daemon = Daemon(data)
    daemon.base = base
    try:
        daemon.start()
        daemon.load_busybox(base)
        yield daemon
    finally:
        daemon.cleanup()  # also lazily unmounts what is under (and at) the data root
        if os.path.ismount(data):
            subprocess.run(["umount", "-l", data], check=False)
        assert not os.path.ismount(data)
        shutil.rmtree(base, ignore_errors=True)


def free_bytes(d: Daemon) -> int:
    st = os.statvfs(d.data_root)
    return st.f_bavail * st.f_frsize


def fill(d: Daemon, leave: int) -> str:
    """A file beside the daemon's state taking all but `leave` bytes: what something else on
    the same filesystem may have taken."""
    path = os.path.join(d.data_root, "filler")
    with open(path, "ab") as f:
        os.posix_fallocate(f.fileno(), os.fstat(f.fileno()).st_size, max(free_bytes(d) - leave, 0))
    return path


def random_image(d: Daemon, name: str, size: int) -> str:
    """A docker-save archive (outside the data root) of an image with one layer of `size`
    random (incompressible) bytes above busybox."""
    work = tempfile.mkdtemp(dir=d.base)
    rootfs = os.path.join(work, "rootfs")
    make_rootfs(rootfs)
    with open(os.path.join(rootfs, "etc", "name"), "w") as f:
        f.write(name)
    return make_docker_archive(rootfs, os.path.join(work, "image.tar"), name,
                               extra_layers=[{"blob": os.urandom(size)}])


def answers(d: Daemon) -> None:
    assert d.docker("version", "--format", "{{.Server.Version}}").stdout.strip()
    d.docker("ps", "-a")
    d.docker("images")


# -- what a consistent data root is ----------------------------------------------------------------

def check_consistent(d: Daemon) -> None:
    """Walk the data root: every image names blobs that exist; every committed snapshot is
    whole (its parent exists, no unpack in progress inside it); every container record has
    its snapshot and every container snapshot its record; no temporary files beside the
    records; nothing mounted but running containers' root filesystems."""
    root = d.data_root
    blobs = os.path.join(root, "content", "blobs", "sha256")
    stored = set(os.listdir(blobs))
    assert all(len(name) == 64 for name in stored), f"stray files among the blobs: {stored}"
    with open(os.path.join(root, "images", "images.json")) as f:
        images = json.load(f)

    def blob(digest: str) -> dict:
        hexpart = digest.split(":", 1)[1]
        assert hexpart in stored, f"an image record names the missing blob {digest}"
        with open(os.path.join(blobs, hexpart), "rb") as f:
            return json.load(f)

    for name, entry in images.items():
        manifest = blob(entry["manifest"])
        blob(entry["config"])
        for layer in manifest["layers"]:
            assert layer["digest"].split(":", 1)[1] in stored, f"{name}: layer {layer['digest']} is missing"
    try:
        with open(os.path.join(root, "snapshots", "metadata.json")) as f:
            snapshots = json.load(f)["snapshots"]
    except FileNotFoundError:  # nothing unpacked yet
        snapshots = {}
    dirs = set(os.listdir(os.path.join(root, "snapshots", "snapshots")))
    for key, s in snapshots.items():
        assert s["id"] in dirs, f"snapshot {key} has no directory"
        assert s["parent"] is None or snapshots.get(s["parent"], {}).get("kind") == "committed", key
        if s["kind"] == "committed":
            leftovers = [n for n in os.listdir(os.path.join(root, "snapshots", "snapshots", s["id"]))
                         if n not in ("fs", "work")]
            assert not leftovers, f"committed snapshot {key} holds {leftovers}"
        else:
            assert len(key) == 64, f"a writable snapshot {key!r} that is not a container's"
    assert dirs == {s["id"] for s in snapshots.values()}, "snapshot directories the metadata does not name"
    containers = os.path.join(root, "containers")
    records = set()
    for cid in os.listdir(containers):
        names = os.listdir(os.path.join(containers, cid))
        assert "config.v2.json" in names, f"container directory {cid} without its record: {names}"
        assert not [n for n in names if ".tmp" in n], f"temporary files in {cid}: {names}"
        with open(os.path.join(containers, cid, "config.v2.json")) as f:
            record = json.load(f)
        assert snapshots.get(record["Orlop"]["Snapshot"], {}).get("kind") == "active", f"{cid} has no snapshot"
        records.add(cid)
    assert {k for k, s in snapshots.items() if s["kind"] == "active"} == records, "snapshots without records"
    assert not [n for n in os.listdir(os.path.join(root, "images")) if n not in ("images.json", "room-to-remove")]
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split()[4] for line in f if line.split()[4].startswith(root + "/")]
    running = {cid for cid in records if d.docker("inspect", "-f", "{{.State.Running}}", cid).stdout.strip() == "true"}
    assert all(m.startswith(containers + "/") and m.split("/")[-2] in running for m in mounts), \
        f"left mounted: {mounts}"


def no_partial_ingests(d: Daemon) -> None:
    ingest = os.path.join(d.data_root, "content", "ingest")
    assert os.listdir(ingest) == [], f"abandoned writes in the content store: {os.listdir(ingest)}"


# -- docker load ---------------------------------------------------------------------------------

def test_load_of_an_image_larger_than_the_space_left():
    with small_daemon() as d:
        d.docker("load", "-i", random_image(d, "ballast:1", 16 * MiB))
        fill(d, 6 * MiB)
        archive = random_image(d, "big:1", 9 * MiB)
        done = d.docker("load", "-i", archive, check=False)
        assert done.returncode != 0
        assert NO_SPACE in done.stderr.lower() and "content" in done.stderr, done.stderr
        answers(d)
        assert d.docker("images", "-q", "big:1").stdout == ""
        check_consistent(d)
        no_partial_ingests(d)
        d.docker("rmi", "ballast:1")
        d.docker("load", "-i", archive)
        assert d.docker("run", "--rm", "big:1", "cat", "/etc/name").stdout == "big:1"
        check_consistent(d)


# -- docker run: a container fills its writable layer ---------------------------------------------

def wait_for(predicate, timeout: float = 20, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError("condition not met in time")


def log_entries(d: Daemon, name: str) -> list[dict]:
    """The container's json-file log, each line of which must be a whole JSON entry."""
    path = d.docker("inspect", "-f", "{{.LogPath}}", name).stdout.strip()
    with open(path, "rb") as f:
        return [json.loads(line) for line in f]


def test_a_container_filling_its_writable_layer_keeps_its_daemon_and_log_sane():
    with small_daemon() as d:
        d.docker("run", "-d", "--name", "hog", "busybox", "sh", "-c",
                 "echo before; dd if=/dev/zero of=/fill bs=64k 2>&1; touch /done;"
                 "i=0; while [ $i -lt 200 ]; do echo after $i; i=$((i+1)); done; exec sleep 1000")
        wait_for(lambda: free_bytes(d) < 256 * 1024)
        time.sleep(1)  # its output while the disk is full
        answers(d)
        assert d.docker("inspect", "-f", "{{.State.Running}}", "hog").stdout.strip() == "true"
        assert d.docker("exec", "hog", "sh", "-c", "echo exec-ok").stdout == "exec-ok\n"
        logs = d.docker("logs", "hog")
        assert "before" in logs.stdout
        entries = log_entries(d, "hog")  # whole lines only: nothing half-written
        assert entries[0]["log"] == "before\n"
        # the container saw its own ENOSPC
        done = d.docker("exec", "hog", "sh", "-c", "echo x > /more", check=False)
        assert done.returncode != 0 and "No space left on device" in done.stderr
        d.docker("stop", "-t", "1", "hog")
        assert d.docker("inspect", "-f", "{{.State.Status}}", "hog").stdout.strip() == "exited"
        check_consistent(d)
        d.docker("rm", "hog")
        assert free_bytes(d) > 8 * MiB
        check_consistent(d)
        # the same again, now that there is room: all of its output is logged
        d.docker("run", "--name", "fits", "busybox", "sh", "-c", "echo before; dd if=/dev/zero of=/f bs=64k count=16"
                 " 2>/dev/null; i=0; while [ $i -lt 200 ]; do echo after $i; i=$((i+1)); done")
        assert d.docker("logs", "fits").stdout.count("after") == 200
        d.docker("rm", "fits")
        check_consistent(d)


# -- docker pull ---------------------------------------------------------------------------------

@pytest.mark.skipif(not shutil.which("docker-registry") or not shutil.which("skopeo"), reason="no registry")
def test_pull_of_an_image_larger_than_the_space_left():
    from registry_fixture import LocalRegistry

    with small_daemon() as d:
        registry = LocalRegistry(tempfile.mkdtemp(dir=d.base), netns=d.netns_path)
        try:
            name = f"{registry.host}/big:1"
            d.in_netns("skopeo", "copy", "--quiet", "--dest-tls-verify=false",
                       f"docker-archive:{random_image(d, 'big:1', 9 * MiB)}", f"docker://{name}", check=True)
            d.docker("load", "-i", random_image(d, "ballast:1", 16 * MiB))
            fill(d, 6 * MiB)
            done = d.docker("pull", name, check=False)
            assert done.returncode != 0
            assert NO_SPACE in done.stderr and "content/ingest" in done.stderr, done.stderr
            answers(d)
            assert d.docker("images", "-q", name).stdout == ""
            check_consistent(d)
            d.docker("rmi", "ballast:1")
            d.docker("pull", name)
            # the download fits, its unpack does not: refused, and no image is named
            d.docker("rmi", name)
            os.unlink(os.path.join(d.data_root, "filler"))
            fill(d, 12 * MiB)
            done = d.docker("pull", name, check=False)
            assert done.returncode != 0 and NO_SPACE in done.stderr and "snapshots" in done.stderr, done.stderr
            assert d.docker("images", "-q", name).stdout == ""
            check_consistent(d)
            os.unlink(os.path.join(d.data_root, "filler"))
            d.docker("pull", name)
            assert d.docker("run", "--rm", name, "cat", "/etc/name").stdout == "big:1"
            check_consistent(d)
        finally:
            registry.stop()


# -- docker build --------------------------------------------------------------------------------

def build_context(d: Daemon, dockerfile: str) -> str:
    context = tempfile.mkdtemp(dir=d.base)
    with open(os.path.join(context, "Dockerfile"), "w") as f:
        f.write(dockerfile)
    return context


def build(d: Daemon, context: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DOCKER_HOST": d.host, "DOCKER_BUILDKIT": "0",
           "DOCKER_CONFIG": os.path.join(d.base, "cli")}
    return subprocess.run([DOCKER, "build", *args, context], capture_output=True, text=True, timeout=300, env=env)


def no_build_leftovers(d: Daemon) -> None:
    work = os.path.join(d.data_root, "tmp", "build")
    assert not os.path.isdir(work) or os.listdir(work) == [], f"build leftovers: {os.listdir(work)}"


def test_build_whose_run_writes_more_than_fits():
    with small_daemon() as d:
        d.docker("load", "-i", random_image(d, "ballast:1", 16 * MiB))
        fill(d, 12 * MiB)
        # the RUN itself meets the full disk
        context = build_context(d, "FROM busybox\nRUN dd if=/dev/zero of=/big bs=1M count=20\n")
        done = build(d, context, "-t", "huge:1")
        assert done.returncode != 0 and "No space left on device" in done.stdout + done.stderr
        assert "returned a non-zero code" in done.stderr, done.stderr
        # the RUN's files fit, their layer in the content store does not
        context = build_context(d, "FROM busybox\nRUN head -c 7000000 /dev/urandom > /big\n")
        done = build(d, context, "-t", "big:1")
        assert done.returncode != 0 and NO_SPACE in done.stderr and "content/ingest" in done.stderr, done.stderr
        answers(d)
        assert d.docker("images", "-q", "big:1").stdout == ""
        check_consistent(d)
        no_partial_ingests(d)
        no_build_leftovers(d)
        d.docker("rmi", "ballast:1")
        done = build(d, context, "-t", "big:1")
        assert done.returncode == 0, done.stderr
        assert d.docker("run", "--rm", "big:1", "sh", "-c", "wc -c < /big").stdout.strip() == "7000000"
        check_consistent(d)
        no_build_leftovers(d)


# -- kill -9 of orlopd in the middle of an operation, then a restart ------------------------------

def runtime_leftovers(d: Daemon) -> list[str]:
    root = os.path.join(d.exec_root, "runtime")
    return [n for r in (os.listdir(root) if os.path.isdir(root) else []) for n in os.listdir(os.path.join(root, r))
            if n.startswith("build-")]


def docker_cmd(d: Daemon, *args: str) -> list[str]:
    return ["env", f"DOCKER_HOST={d.host}", f"DOCKER_CONFIG={os.path.join(d.base, 'cli')}", "DOCKER_BUILDKIT=0",
            DOCKER, *args]


def ingest_sizes(d: Daemon) -> dict[str, int]:
    """{ref: bytes written} of the content store's writes in progress."""
    root = os.path.join(d.data_root, "content", "ingest")
    sizes = {}
    for name in os.listdir(root):
        with contextlib.suppress(OSError), open(os.path.join(root, name, "ref")) as f:
            sizes[f.read()] = os.path.getsize(os.path.join(root, name, "data"))
    return sizes


def test_kill_9_mid_build_then_restart():
    with small_daemon() as d:
        context = build_context(d, "FROM busybox\nARG NAP=0\nRUN echo started > /proof && sleep $NAP\n")
        client = subprocess.Popen(docker_cmd(d, "build", "--build-arg", "NAP=1000", "-t", "slow:1", context),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        snapshots = os.path.join(d.data_root, "snapshots", "snapshots")
        wait_for(lambda: any(os.path.exists(os.path.join(snapshots, s, "fs", "proof")) for s in os.listdir(snapshots)))
        d.kill()  # the RUN is running: its container, mounted workspace and snapshot
        client.wait(30)
        d.start()
        answers(d)
        check_consistent(d)
        no_build_leftovers(d)
        assert runtime_leftovers(d) == []
        done = build(d, context, "-t", "slow:1")
        assert done.returncode == 0, done.stderr
        assert d.docker("run", "--rm", "slow:1", "cat", "/proof").stdout == "started\n"
        check_consistent(d)


def test_kill_9_mid_load_then_restart():
    with small_daemon() as d:
        archive = random_image(d, "big:1", 8 * MiB)
        client = subprocess.Popen(docker_cmd(d, "load"), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        with open(archive, "rb") as f:
            client.stdin.write(f.read(os.path.getsize(archive) // 2))  # half of it, then the client stalls
            client.stdin.flush()
            wait_for(lambda: any(size >= MiB for size in ingest_sizes(d).values()))
            d.kill()
            client.stdin.close()
            client.wait(30)
        d.start()
        answers(d)
        assert d.docker("images", "-q", "big:1").stdout == ""
        check_consistent(d)
        no_partial_ingests(d)  # a load is never resumed: what it was writing goes
        d.docker("load", "-i", archive)
        assert d.docker("run", "--rm", "big:1", "cat", "/etc/name").stdout == "big:1"
        check_consistent(d)


PULL_REGISTRY = """
import hashlib, io, json, random, sys, tarfile, time
sys.path.insert(0, sys.argv[1])
from fake_registry import FakeRegistry
data = random.Random(7).randbytes(4 << 20)
buffer = io.BytesIO()
with tarfile.open(fileobj=buffer, mode="w") as tar:
    info = tarfile.TarInfo("blob"); info.size = len(data); tar.addfile(info, io.BytesIO(data))
layer = buffer.getvalue()
config = {"architecture": "amd64", "os": "linux", "config": {},
          "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]}}
registry = FakeRegistry("stall", [layer], config, stall_after=int(sys.argv[2]) or None)
print(registry.host, flush=True)
time.sleep(3600)
"""


@contextlib.contextmanager
def stalling_registry(d: Daemon, stall_after: int):
    """tests/fake_registry.py in the daemon's network namespace: one image, `stall`, whose
    layer's download hangs after `stall_after` bytes (0: never)."""
    tests = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.Popen(["nsenter", f"--net={d.netns_path}", "--", sys.executable, "-c", PULL_REGISTRY, tests,
                             str(stall_after)], stdout=subprocess.PIPE, text=True)
    try:
        yield proc.stdout.readline().strip()
    finally:
        proc.kill()
        proc.wait()


def test_kill_9_mid_pull_then_restart_resumes_the_download():
    with small_daemon() as d:
        with stalling_registry(d, stall_after=MiB) as host:
            client = subprocess.Popen(docker_cmd(d, "pull", f"{host}/stall:1"), stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)
            wait_for(lambda: any(r.startswith("blob-") and size >= MiB for r, size in ingest_sizes(d).items()))
            d.kill()
            client.wait(30)
        d.start()
        answers(d)
        assert "stall" not in d.docker("images").stdout
        check_consistent(d)
        kept = ingest_sizes(d)  # the download, and nothing else, is kept to be resumed
        assert len(kept) == 1 and next(iter(kept)).startswith("blob-") and next(iter(kept.values())) >= MiB
        with stalling_registry(d, stall_after=0) as host:
            d.docker("pull", f"{host}/stall:1")
            assert d.docker("images", "-q", f"{host}/stall:1").stdout.strip()
        no_partial_ingests(d)
        check_consistent(d)


# -- docker commit, docker cp, volumes and container records on a full disk -----------------------

def test_commit_and_cp_into_a_container_when_full():
    with small_daemon() as d:
        d.docker("load", "-i", random_image(d, "ballast:1", 16 * MiB))
        d.docker("run", "--name", "work", "busybox", "sh", "-c", "head -c 4000000 /dev/urandom > /data")
        fill(d, 2 * MiB)
        done = d.docker("commit", "work", "committed:1", check=False)
        assert done.returncode != 0 and NO_SPACE in done.stderr and "content/ingest" in done.stderr, done.stderr
        assert d.docker("images", "-q", "committed:1").stdout == ""
        source = os.path.join(d.base, "payload")
        with open(source, "wb") as f:
            f.write(os.urandom(4 * MiB))
        done = d.docker("cp", source, "work:/payload", check=False)
        assert done.returncode != 0 and NO_SPACE in done.stderr.lower(), done.stderr
        assert "/payload" in done.stderr, done.stderr
        upper = d.docker("inspect", "-f", "{{.GraphDriver.Data.UpperDir}}", "work").stdout.strip()
        assert not os.path.exists(os.path.join(upper, "payload")), "a half-copied file stays in the container"
        answers(d)
        check_consistent(d)
        no_partial_ingests(d)
        d.docker("rmi", "ballast:1")
        d.docker("commit", "work", "committed:1")
        d.docker("cp", source, "work:/payload")
        assert d.docker("run", "--rm", "committed:1", "wc", "-c", "/data").stdout.split()[0] == "4000000"
        check_consistent(d)


def test_volume_and_container_records_when_full():
    with small_daemon() as d:
        client = d.client()
        try:
            client.volumes.create("data")
            fill(d, 0)
            with pytest.raises(docker_errors().APIError, match=NO_SPACE) as raised:
                client.volumes.create("more")
            assert "volumes/more" in str(raised.value)
            assert [v.name for v in client.volumes.list()] == ["data"]
            assert not os.path.exists(os.path.join(d.data_root, "volumes", "more")), "a half-made volume"
            with pytest.raises(docker_errors().APIError, match=NO_SPACE) as raised:
                client.containers.create("busybox", "true", name="late")
            assert f"write {d.data_root}/" in str(raised.value)  # its snapshot's record, or its own
            done = d.docker("create", "--name", "late", "-v", "/anon", "busybox", "true", check=False)
            assert done.returncode != 0 and NO_SPACE in done.stderr and f"write {d.data_root}/" in done.stderr
            assert client.containers.list(all=True) == []
            assert [v.name for v in client.volumes.list()] == ["data"], "the anonymous volume of a refused create"
            done = d.docker("run", "--rm", "-v", "data:/data", "busybox", "true", check=False)
            assert done.returncode == 125 and NO_SPACE in done.stderr, done.stderr
            answers(d)
            check_consistent(d)
            os.unlink(os.path.join(d.data_root, "filler"))
            fill(d, 4 * MiB)  # room for records, not for what a container writes
            client.volumes.create("more")
            output = d.docker("run", "--rm", "-v", "data:/data", "busybox", "sh", "-c",
                              "dd if=/dev/zero of=/data/big bs=1M count=8 2>&1; echo status $?", check=False)
            assert "No space left on device" in output.stdout and "status 1" in output.stdout, output
            answers(d)
            check_consistent(d)
            d.docker("volume", "rm", "data")  # what filled the disk
            d.docker("create", "--name", "late", "-v", "/anon", "busybox", "true")
            container = client.containers.get("late")
            container.start()
            assert container.wait()["StatusCode"] == 0
            container.remove(v=True)
            assert [v.name for v in client.volumes.list()] == ["more"]
            check_consistent(d)
        finally:
            client.close()


def docker_errors():
    import docker.errors

    return docker.errors


def snapshot_keys(d: Daemon) -> set[str]:
    with contextlib.suppress(FileNotFoundError, ValueError), \
            open(os.path.join(d.data_root, "snapshots", "metadata.json")) as f:
        return set(json.load(f)["snapshots"])
    return set()


def fifo_writer(path: str, client: subprocess.Popen) -> int:
    """The write end of the FIFO at `path`, once the daemon has opened it to read (a failing
    client fails the test instead of hanging it)."""
    deadline = time.monotonic() + 20
    while True:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:  # ENXIO: no reader yet
            assert client.poll() is None, f"the client ended: {client.stderr.read()}"
            assert time.monotonic() < deadline, "the daemon never read the blob"
            time.sleep(0.05)
            continue
        os.set_blocking(fd, True)
        return fd


def test_kill_9_mid_create_while_the_image_unpacks_then_restart():
    with small_daemon() as d:
        d.docker("load", "-i", random_image(d, "big:1", 8 * MiB))
        with open(os.path.join(d.data_root, "images", "images.json")) as f:
            manifest = json.load(f)["docker.io/library/big:1"]["manifest"]
        blobs = os.path.join(d.data_root, "content", "blobs", "sha256")
        with open(os.path.join(blobs, manifest.split(":")[1])) as f:
            layer = os.path.join(blobs, json.load(f)["layers"][-1]["digest"].split(":")[1])
        held = os.path.join(d.data_root, "held")
        os.rename(layer, held)
        os.mkfifo(layer)  # the layer's blob, read as it comes: the unpack stalls half-way
        try:
            client = subprocess.Popen(docker_cmd(d, "create", "--name", "mid", "big:1"),
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            fifo = fifo_writer(layer, client)
            with open(held, "rb") as source:
                os.write(fifo, source.read(MiB))  # what a pipe holds; the unpack reads it and waits
            wait_for(lambda: any(k.startswith("extract-") for k in snapshot_keys(d)))
            d.kill()
            os.close(fifo)
            client.wait(30)
        finally:
            os.unlink(layer)
            os.rename(held, layer)
        d.start()
        answers(d)
        check_consistent(d)
        assert d.docker("ps", "-aq").stdout == ""
        d.docker("create", "--name", "mid", "big:1")
        assert d.docker("start", "-a", "mid").returncode == 0
        check_consistent(d)


def test_kill_9_mid_remove_then_restart():
    import fcntl

    with small_daemon() as d:
        cid = d.docker("run", "--name", "gone", "busybox", "sh", "-c", "echo data > /file").stdout.strip()
        cid = d.docker("inspect", "-f", "{{.Id}}", "gone").stdout.strip()
        with open(os.path.join(d.data_root, "snapshots", "lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # the snapshots' removal waits for it
            client = subprocess.Popen(docker_cmd(d, "rm", "gone"), stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)
            wait_for(lambda: not os.path.exists(os.path.join(d.data_root, "containers", cid, "config.v2.json")))
            d.kill()
        client.wait(30)
        assert cid in snapshot_keys(d)  # what the crash left: a snapshot without its record
        d.start()
        answers(d)
        assert d.docker("ps", "-aq").stdout == ""
        assert cid not in snapshot_keys(d)
        check_consistent(d)
        d.docker("run", "--name", "gone", "busybox", "true")
        check_consistent(d)


def test_rmi_and_image_prune_on_a_disk_full_to_the_last_byte():
    with small_daemon() as d:
        d.docker("load", "-i", random_image(d, "ballast:1", 8 * MiB))
        d.docker("load", "-i", random_image(d, "old:1", 8 * MiB))
        fill(d, 0)
        assert free_bytes(d) == 0
        assert "Deleted: sha256:" in d.docker("rmi", "ballast:1").stdout  # the room kept for it
        check_consistent(d)
        assert os.path.exists(os.path.join(d.data_root, "images", "room-to-remove"))  # kept again
        fill(d, 0)
        assert "Total reclaimed space" in d.docker("image", "prune", "-af").stdout
        assert d.docker("images", "-q", "old:1").stdout == ""
        check_consistent(d)
        os.unlink(os.path.join(d.data_root, "filler"))
        d.docker("load", "-i", random_image(d, "ballast:1", 8 * MiB))  # and the room is kept again
        assert os.path.getsize(os.path.join(d.data_root, "images", "room-to-remove")) == MiB
