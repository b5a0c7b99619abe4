"""Cgroup limits (set and enforced), exec into a running container, hooks and the
console socket."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time

import pytest
from busybox_bundle import default_config
from conftest import needs_root

pytestmark = needs_root


def init_pid(runtime, cid: str) -> int:
    return json.loads(runtime("state", cid).stdout)["pid"]


def cgroup_dir(pid: int, controller: str) -> str:
    for line in open(f"/proc/{pid}/cgroup"):
        _, controllers, path = line.rstrip("\n").split(":", 2)
        if controller in controllers.split(","):
            return f"/sys/fs/cgroup/{controller}{path}"
        if controllers == "" and not os.path.isdir(f"/sys/fs/cgroup/{controller}"):
            return f"/sys/fs/cgroup{path}"
    raise AssertionError(f"no {controller} cgroup for {pid}")


def read(path: str) -> str:
    return open(path).read().strip()


def test_cgroup_resources_are_written(runtime, bundle_factory, container_id):
    config = default_config()
    config["linux"]["cgroupsPath"] = f"/orlop-test/{container_id}"
    config["linux"]["resources"] = {
        "memory": {"limit": 64 * 2**20, "reservation": 32 * 2**20},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
        "pids": {"limit": 42},
    }
    runtime("run", "-d", "--bundle", bundle_factory(["sleep", "60"], config), container_id)
    pid = init_pid(runtime, container_id)
    memory = cgroup_dir(pid, "memory")
    assert memory.endswith(f"/orlop-test/{container_id}")
    if os.path.exists(f"{memory}/memory.limit_in_bytes"):  # cgroup v1
        assert read(f"{memory}/memory.limit_in_bytes") == str(64 * 2**20)
        assert read(f"{memory}/memory.soft_limit_in_bytes") == str(32 * 2**20)
        cpu = cgroup_dir(pid, "cpu")
        assert read(f"{cpu}/cpu.shares") == "512"
        assert read(f"{cpu}/cpu.cfs_quota_us") == "50000"
        assert read(f"{cgroup_dir(pid, 'cpuset')}/cpuset.cpus") == "0"
        assert read(f"{cgroup_dir(pid, 'pids')}/pids.max") == "42"
    else:
        assert read(f"{memory}/memory.max") == str(64 * 2**20)
        assert read(f"{memory}/cpu.max") == "50000 100000"
        assert read(f"{memory}/pids.max") == "42"
    runtime("delete", "--force", container_id)
    assert not os.path.exists(memory), "delete removes the cgroup"


def test_memory_limit_is_enforced_by_oom_kill(runtime, bundle_factory, container_id):
    config = default_config()
    config["linux"]["resources"] = {"memory": {"limit": 16 * 2**20, "swap": 16 * 2**20}}
    # Keep 64 MiB in a shell variable: far past the limit.
    script = "x=$(head -c 67108864 /dev/zero | tr '\\0' a); echo survived"
    done = runtime("run", "--bundle", bundle_factory(["sh", "-c", script], config), container_id, check=False)
    assert "survived" not in done.stdout
    assert done.returncode == 137


def test_pids_limit_stops_forks(runtime, bundle_factory, container_id):
    config = default_config()
    config["linux"]["resources"] = {"pids": {"limit": 5}}
    script = "cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max; " \
             "for i in 1 2 3 4 5 6 7 8; do sleep 5 & done; kill $(jobs -p) 2>/dev/null; true"
    done = runtime("run", "--bundle", bundle_factory(["sh", "-c", script], config), container_id, check=False)
    assert done.stdout.split()[0] == "5"
    assert "can't fork" in done.stderr or "Resource temporarily unavailable" in done.stderr, done.stderr


def test_devices_cgroup_denies_unlisted_devices(runtime, bundle_factory, container_id):
    if not os.path.isdir("/sys/fs/cgroup/devices"):
        pytest.skip("devices controller is cgroup v1 only here")
    config = default_config()
    config["linux"]["devices"] = [{"path": "/dev/mynull", "type": "c", "major": 1, "minor": 3, "fileMode": 0o666}]
    config["linux"]["resources"] = {"devices": [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
    ]}
    config["linux"]["devices"].append({"path": "/dev/kmsg2", "type": "c", "major": 1, "minor": 11, "fileMode": 0o666})
    out = runtime("run", "--bundle", bundle_factory(
        ["sh", "-c", "head -c1 /dev/zero | wc -c; cat /dev/kmsg2 2>&1 | head -c 200"], config), container_id).stdout
    assert out.splitlines()[0].strip() == "1"
    assert "Operation not permitted" in out


def test_pause_freezes_processes(runtime, bundle_factory, container_id):
    runtime("run", "-d", "--bundle", bundle_factory(["sleep", "60"]), container_id)
    pid = init_pid(runtime, container_id)
    runtime("pause", container_id)
    freezer = cgroup_dir(pid, "freezer")
    assert read(f"{freezer}/freezer.state") == "FROZEN"
    runtime("resume", container_id)
    assert read(f"{freezer}/freezer.state") == "THAWED"


def test_exec_joins_namespaces_and_cgroup(runtime, bundle_factory, container_id):
    runtime("run", "-d", "--bundle", bundle_factory(["sleep", "60"]), container_id)
    pid = init_pid(runtime, container_id)
    done = runtime("exec", container_id, "sh", "-c", "echo $$; for n in pid mnt net uts; do readlink /proc/self/ns/$n;"
                   " done; hostname; cat /proc/self/cgroup")
    lines = done.stdout.splitlines()
    assert int(lines[0]) > 1
    for name, line in zip(("pid", "mnt", "net", "uts"), lines[1:5], strict=True):
        assert line == os.readlink(f"/proc/{pid}/ns/{name}")
    assert lines[5] == "runc"
    # No cgroup namespace in this config: the exec'd process sees the same paths the kernel
    # reports for the init, i.e. it was put in the init's cgroups.
    assert lines[6:] == open(f"/proc/{pid}/cgroup").read().splitlines()


def test_exec_exit_status_env_cwd_user(runtime, bundle_factory, container_id):
    runtime("run", "-d", "--bundle", bundle_factory(["sleep", "60"]), container_id)
    done = runtime("exec", "--env", "A=1", "--cwd", "/tmp", "--user", "1000:1000", container_id,
                   "sh", "-c", "echo $A; pwd; id -u; exit 9", check=False)
    assert done.returncode == 9
    assert done.stdout.split() == ["1", "/tmp", "1000"]
    done = runtime("exec", container_id, "nosuchcmd", check=False)
    assert done.returncode != 0 and "executable file not found" in done.stderr


def test_exec_with_process_json_detached_and_pid_file(runtime, bundle_factory, container_id, tmp_path):
    runtime("run", "-d", "--bundle", bundle_factory(["sleep", "60"]), container_id)
    process = {"args": ["sleep", "30"], "cwd": "/", "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0},
               "terminal": False}
    (tmp_path / "p.json").write_text(json.dumps(process))
    runtime("exec", "-d", "--pid-file", str(tmp_path / "pid"), "-p", str(tmp_path / "p.json"), container_id)
    pid = int((tmp_path / "pid").read_text())
    assert open(f"/proc/{pid}/cmdline").read().split("\0")[:2] == ["sleep", "30"]
    assert pid in json.loads(runtime("ps", "--format", "json", container_id).stdout)


def test_hooks_get_state_on_stdin_in_order(runtime, bundle_factory, container_id, tmp_path):
    log = tmp_path / "hooks.log"
    hook_script = tmp_path / "hook.sh"
    hook_script.write_text(f"#!/bin/sh\necho \"$1 $(cat)\" >> {log}\n")
    hook_script.chmod(0o755)
    config = default_config()
    config["hooks"] = {kind: [{"path": str(hook_script), "args": ["hook.sh", kind]}]
                       for kind in ("prestart", "createRuntime", "poststart", "poststop")}
    bundle = bundle_factory(["true"], config)
    runtime("run", "--bundle", bundle, container_id)
    entries = [line.split(" ", 1) for line in log.read_text().splitlines()]
    assert [kind for kind, _ in entries] == ["prestart", "createRuntime", "poststart", "poststop"]
    for kind, payload in entries:
        state = json.loads(payload)
        assert state["id"] == container_id and state["bundle"] == bundle
        if kind != "poststop":
            assert state["pid"] > 0


def test_failing_create_hook_fails_create_and_cleans_up(runtime, bundle_factory, container_id):
    config = default_config()
    config["hooks"] = {"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", "echo nope >&2; exit 3"]}]}
    done = runtime("create", "--bundle", bundle_factory(["true"], config), container_id, check=False)
    assert done.returncode == 1
    assert "createRuntime" in done.stderr and "nope" in done.stderr
    assert not os.path.exists(os.path.join(runtime.root, container_id))


def test_hook_timeout(runtime, bundle_factory, container_id):
    config = default_config()
    config["hooks"] = {"prestart": [{"path": "/bin/sleep", "args": ["sleep", "5"], "timeout": 1}]}
    done = runtime("create", "--bundle", bundle_factory(["true"], config), container_id, check=False)
    assert done.returncode == 1 and "did not finish" in done.stderr


def test_console_socket_receives_pty_master(runtime, bundle_factory, container_id, tmp_path):
    sock_path = str(tmp_path / "console.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(sock_path)
    server.listen(1)
    config = default_config()
    bundle = bundle_factory(["sh", "-c", "tty; stty size; echo done"], config)
    config = json.load(open(os.path.join(bundle, "config.json")))
    config["process"]["terminal"] = True
    config["process"]["consoleSize"] = {"height": 33, "width": 101}
    json.dump(config, open(os.path.join(bundle, "config.json"), "w"))
    runtime("create", "--console-socket", sock_path, "--bundle", bundle, container_id)
    conn, _ = server.accept()
    msg, fds, _, _ = socket.recv_fds(conn, 4096, 1)
    assert len(fds) == 1 and msg.startswith(b"/dev/pts/")
    master = fds[0]
    runtime("start", container_id)
    output = b""
    deadline = time.monotonic() + 5
    while b"done" not in output and time.monotonic() < deadline:
        try:
            output += os.read(master, 4096)
        except OSError:
            break
    text = output.decode()
    assert "/dev/console" in text or "/dev/pts/" in text
    assert "33 101" in text
    os.close(master)
    conn.close()
    server.close()


def test_terminal_without_console_socket_when_detached_is_refused(runtime, bundle_factory, container_id):
    bundle = bundle_factory(["true"])
    config = json.load(open(os.path.join(bundle, "config.json")))
    config["process"]["terminal"] = True
    json.dump(config, open(os.path.join(bundle, "config.json"), "w"))
    done = runtime("create", "--bundle", bundle, container_id, check=False)
    assert done.returncode == 1 and "console socket" in done.stderr


def test_foreground_run_with_terminal_proxies_the_pty(runtime, bundle_factory, container_id):
    bundle = bundle_factory(["sh", "-c", "test -t 0 && echo is-a-tty"])
    config = json.load(open(os.path.join(bundle, "config.json")))
    config["process"]["terminal"] = True
    json.dump(config, open(os.path.join(bundle, "config.json"), "w"))
    done = subprocess.run(runtime.cmd("run", "--bundle", bundle, container_id), stdin=subprocess.DEVNULL,
                          capture_output=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert b"is-a-tty" in done.stdout
