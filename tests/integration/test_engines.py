"""orlop-runtime as the OCI runtime of real engines: podman, containerd (ctr) and
dockerd, each started by the test with its own state and stopped after it.

Every engine gets the same busybox image from a `docker save` archive.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

import pytest
from conftest import ORLOP_RUNTIME, needs_root
from image_archive import make_docker_archive

pytestmark = needs_root
IMAGE = "localhost/busybox:orlop-test"
ULIMITS = ["--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768"]  # no CAP_SYS_RESOURCE here


def run(cmd: list[str], timeout: float = 60, check: bool = True, **kw) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done


@pytest.fixture(scope="module")
def image_archive(tmp_path_factory, rootfs_template) -> str:
    return make_docker_archive(rootfs_template, str(tmp_path_factory.mktemp("image") / "busybox.tar"), IMAGE)


def _unmount_below(path: str) -> None:
    with open("/proc/self/mountinfo") as f:
        targets = [line.split()[4] for line in f if line.split()[4].startswith(path + "/")]
    for target in sorted(targets, key=len, reverse=True):
        subprocess.run(["umount", "-l", target], capture_output=True)


def _stop(proc: subprocess.Popen, root: str) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    _unmount_below(root)
    shutil.rmtree(root, ignore_errors=True)


def _wait_for_socket(path: str, proc: subprocess.Popen, log: str) -> None:
    for _ in range(200):
        if os.path.exists(path):
            return
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise AssertionError(f"daemon did not start:\n{open(log).read()[-3000:]}")


# -- podman --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def podman(tmp_path_factory, image_archive):
    if not shutil.which("podman"):
        pytest.skip("podman is not installed")
    base = tmp_path_factory.mktemp("podman")
    cmd = ["podman", "--root", str(base / "storage"), "--runroot", str(base / "run"), "--storage-driver", "vfs",
           "--cgroup-manager", "cgroupfs", "--events-backend", "file", "--runtime", ORLOP_RUNTIME]
    run([*cmd, "load", "-i", image_archive])
    yield cmd
    run([*cmd, "rm", "-af", "-t", "0"], check=False)
    run([*cmd, "system", "reset", "-f"], check=False)
    _unmount_below(str(base))


def test_podman_run(podman):
    done = run([*podman, "run", "--rm", "--network", "none", *ULIMITS, IMAGE, "echo", "ok"])
    assert done.stdout == "ok\n"


def test_podman_run_it(podman):
    # `script` gives podman a terminal. Its stdin stays open while the container runs: at EOF
    # podman may end the attach before the output arrives (it does so with runc too).
    command = " ".join([*podman, "run", "--rm", "-it", "--network", "none", *ULIMITS, IMAGE,
                        "sh", "-c", "'tty; echo it-ok'"])
    proc = subprocess.Popen(["script", "-qec", command, "/dev/null"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.wait(timeout=60) == 0, proc.stderr.read()
    finally:
        proc.stdin.close()
    out = proc.stdout.read()
    assert "/dev/pts/" in out and "it-ok" in out


def test_podman_exec_and_stop(podman):
    cid = run([*podman, "run", "-d", "--network", "none", *ULIMITS, IMAGE, "sleep", "60"]).stdout.strip()
    try:
        assert run([*podman, "exec", cid, "sh", "-c", "echo exec $$"]).stdout.split() == ["exec", "2"]
        run([*podman, "stop", "-t", "1", cid])
        status = run([*podman, "inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", cid]).stdout.split()
        assert status == ["exited", "137"]  # sleep as PID 1 ignores SIGTERM: podman kills it
    finally:
        run([*podman, "rm", "-f", cid], check=False)


# -- containerd ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ctr(tmp_path_factory, image_archive):
    if not shutil.which("containerd"):
        pytest.skip("containerd is not installed")
    base = tmp_path_factory.mktemp("containerd")
    sock = str(base / "containerd.sock")
    (base / "config.toml").write_text(f"""version = 2
root = "{base}/root"
state = "{base}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
""")
    log = str(base / "containerd.log")
    proc = subprocess.Popen(["containerd", "--config", str(base / "config.toml")], stdout=open(log, "w"),
                            stderr=subprocess.STDOUT)
    _wait_for_socket(sock, proc, log)
    cmd = ["ctr", "--address", sock, "-n", "orlop-test"]
    run([*cmd, "images", "import", image_archive])
    yield cmd
    _stop(proc, str(base))


def test_containerd_run_exec_kill_delete(ctr):
    assert run([*ctr, "run", "--rm", "--runc-binary", ORLOP_RUNTIME, IMAGE, "c-echo", "echo", "ok"]).stdout == "ok\n"
    run([*ctr, "run", "-d", "--runc-binary", ORLOP_RUNTIME, IMAGE, "c-long", "sleep", "60"])
    try:
        out = run([*ctr, "task", "exec", "--exec-id", "e1", "c-long", "sh", "-c", "echo exec $$"]).stdout
        assert out.split() == ["exec", "2"]
        run([*ctr, "task", "kill", "-s", "SIGKILL", "c-long"])
        for _ in range(100):
            if "STOPPED" in run([*ctr, "task", "ls"]).stdout:
                break
            time.sleep(0.05)
        assert "STOPPED" in run([*ctr, "task", "ls"]).stdout
        run([*ctr, "task", "delete", "c-long"])
    finally:
        run([*ctr, "task", "delete", "-f", "c-long"], check=False)
        run([*ctr, "container", "rm", "c-long"], check=False)


# -- dockerd -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def docker(tmp_path_factory, image_archive):
    if not shutil.which("dockerd") or not shutil.which("docker"):
        pytest.skip("dockerd or the docker CLI is not installed")
    base = tmp_path_factory.mktemp("dockerd")
    sock = str(base / "docker.sock")
    log = str(base / "dockerd.log")
    # Its own network namespace: with --bridge none in the host's it would delete the host's docker0.
    proc = subprocess.Popen(["unshare", "-n", "dockerd", "--data-root", str(base / "data"),
                             "--exec-root", str(base / "exec"), "-H", f"unix://{sock}",
                             "--pidfile", str(base / "docker.pid"), "--bridge", "none", "--iptables=false",
                             "--ip-masq=false", "--add-runtime", f"orlop={ORLOP_RUNTIME}"],
                            stdout=open(log, "w"), stderr=subprocess.STDOUT)
    _wait_for_socket(sock, proc, log)
    env = dict(os.environ, DOCKER_HOST=f"unix://{sock}")
    run(["docker", "load", "-i", image_archive], env=env)
    yield env
    _stop(proc, str(base))


def docker_cli(env, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run(["docker", *args], env=env, check=check)


def test_dockerd_seed_flows(docker):
    out = docker_cli(docker, "run", "--rm", "--runtime", "orlop", "--network", "none", IMAGE, "echo", "hello", "world")
    assert out.stdout == "hello world\n"
    cid = docker_cli(docker, "run", "-d", "--runtime", "orlop", "--network", "none", IMAGE,
                     "sh", "-c", "echo pid=$$; sleep 60").stdout.strip()
    try:
        assert docker_cli(docker, "exec", cid, "sh", "-c", "echo exec $$").stdout.split() == ["exec", "2"]
        host_pid = int(docker_cli(docker, "inspect", "-f", "{{.State.Pid}}", cid).stdout)
        assert host_pid > 1 and os.path.exists(f"/proc/{host_pid}")
        os.kill(host_pid, signal.SIGKILL)
        assert docker_cli(docker, "wait", cid).stdout.strip() == "137"
        assert docker_cli(docker, "logs", cid).stdout == "pid=1\n"
    finally:
        docker_cli(docker, "rm", "-f", cid, check=False)


def test_dockerd_applies_its_default_seccomp_and_caps(docker):
    out = docker_cli(docker, "run", "--rm", "--runtime", "orlop", "--network", "none", IMAGE,
                     "sh", "-c", "grep -E '^(CapEff|Seccomp):' /proc/self/status; probe unshare keyctl").stdout
    lines = out.splitlines()
    assert lines[0].split()[1] == "00000000a80425fb"  # Docker's 14 default capabilities
    assert lines[1].split()[1] == "2"
    assert lines[2:] == ["unshare errno=1", "keyctl errno=1"]
