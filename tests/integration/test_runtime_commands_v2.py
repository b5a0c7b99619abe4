"""`spec`, `features`, container-side hooks, exec with a terminal, and the cgroup v2
manager on the kernel's real cgroup2 tree."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time

import pytest
from busybox_bundle import default_config
from conftest import ORLOP_RUNTIME, needs_root

from orlop.linux.cgroups import open_manager
from orlop.linux.cgroups.common import read_hierarchies

pytestmark = needs_root


def test_spec_writes_runc_compatible_config(tmp_path):
    subprocess.run([ORLOP_RUNTIME, "spec", "--bundle", str(tmp_path)], check=True)
    ours = json.loads((tmp_path / "config.json").read_text())
    done = subprocess.run([ORLOP_RUNTIME, "spec", "--bundle", str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 1 and "exists" in done.stderr
    runc_dir = tmp_path / "runc"
    runc_dir.mkdir()
    if subprocess.run(["runc", "spec"], cwd=runc_dir).returncode == 0:
        assert ours == json.loads((runc_dir / "config.json").read_text())


def test_rootless_spec_runs(runtime, tmp_path, rootfs_template, container_id):
    bundle = tmp_path / "rootless"
    bundle.mkdir()
    subprocess.run(["cp", "-a", "--link", rootfs_template, str(bundle / "rootfs")], check=True)
    subprocess.run([ORLOP_RUNTIME, "spec", "--rootless", "--bundle", str(bundle)], check=True)
    config = json.loads((bundle / "config.json").read_text())
    assert any(n["type"] == "user" for n in config["linux"]["namespaces"])
    config["process"]["terminal"] = False
    config["process"]["args"] = ["sh", "-c", "id -u; cat /proc/self/uid_map"]
    (bundle / "config.json").write_text(json.dumps(config))
    out = runtime("run", "--bundle", str(bundle), container_id).stdout.split()
    assert out == ["0", "0", str(os.geteuid()), "1"]


def test_features_json():
    features = json.loads(subprocess.run([ORLOP_RUNTIME, "features"], capture_output=True, check=True).stdout)
    assert features["ociVersionMax"].startswith("1.2")
    assert "CAP_SYS_ADMIN" in features["linux"]["capabilities"]
    assert set(features["linux"]["namespaces"]) >= {"pid", "network", "mount", "user", "cgroup"}
    assert "rbind" in features["mountOptions"]


def test_container_side_hooks_run_inside(runtime, bundle_factory, container_id, tmp_path):
    log = tmp_path / "hooks.log"
    config = default_config()
    # createContainer: runtime's paths, container's namespaces (before pivot_root and sethostname,
    # as in runc).
    config["hooks"] = {
        "createContainer": [{"path": "/bin/sh", "args": ["sh", "-c", f"readlink /proc/self/ns/uts >> {log}"]}],
        # startContainer: resolved inside the container, after pivot_root.
        "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "echo start $(hostname) > /dev/shm/hook-ran"]}],
    }
    config["hostname"] = "hooked"
    bundle = bundle_factory(["cat", "/dev/shm/hook-ran"], config)
    out = runtime("run", "--bundle", bundle, container_id).stdout
    hook_uts = log.read_text().strip()
    assert hook_uts.startswith("uts:[") and hook_uts != os.readlink("/proc/self/ns/uts")
    assert out == "start hooked\n"


def test_exec_with_tty_over_console_socket(runtime, bundle_factory, container_id, tmp_path):
    runtime("run", "-d", "--bundle", bundle_factory(["sleep", "60"]), container_id)
    sock_path = str(tmp_path / "exec-console.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(sock_path)
    server.listen(1)
    proc = subprocess.Popen(runtime.cmd("exec", "-t", "--console-socket", sock_path, container_id,
                                        "sh", "-c", "tty; echo done"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    conn, _ = server.accept()
    _, fds, _, _ = socket.recv_fds(conn, 4096, 1)
    master = fds[0]
    output = b""
    deadline = time.monotonic() + 10
    while b"done" not in output and time.monotonic() < deadline:
        try:
            output += os.read(master, 4096)
        except OSError:
            break
    assert proc.wait(timeout=10) == 0, proc.stderr.read()
    assert b"/dev/pts/" in output
    os.close(master)
    conn.close()
    server.close()


@pytest.fixture
def unified_manager():
    """A V2Manager on this host's cgroup2 tree (the hybrid host's /sys/fs/cgroup/unified too)."""
    found = read_hierarchies()
    if not found.v2_mount:
        pytest.skip("no cgroup2 hierarchy mounted")
    found.v1 = {}  # use the cgroup2 tree alone, as on a unified host
    manager = open_manager(f"/orlop-v2-test-{os.getpid()}", "x", hierarchies=found)
    manager.create()
    yield manager
    manager.kill_all(9)
    time.sleep(0.05)
    manager.destroy()


def test_v2_manager_on_the_kernel(unified_manager):
    child = subprocess.Popen(["sleep", "60"])
    try:
        unified_manager.add_pid(child.pid)
        assert unified_manager.pids() == [child.pid]
        unified_manager.freeze()
        assert unified_manager.is_frozen()
        state = open(f"/proc/{child.pid}/stat").read().split(") ")[1][0]
        assert state in ("S", "D", "T")  # frozen tasks sleep in the freezer
        unified_manager.thaw()
        assert not unified_manager.is_frozen()
        unified_manager.kill_all(15)
        assert child.wait(timeout=5) == -15
    finally:
        child.kill()
        child.wait()
    unified_manager.destroy()
    assert not os.path.exists(unified_manager.path)
