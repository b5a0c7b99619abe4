"""orlop-runtime's command line driven as engines drive runc: the lifecycle,
state, exit codes and the errors for wrong ids and bundles."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest
from busybox_bundle import read_config, write_config
from conftest import needs_root

pytestmark = needs_root


def wait_for_status(runtime, cid: str, wanted: str, timeout: float = 5.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        done = runtime("state", cid, check=time.monotonic() > deadline)
        state = json.loads(done.stdout) if done.returncode == 0 else {"status": "absent"}
        if state["status"] == wanted or time.monotonic() > deadline:
            return state
        time.sleep(0.02)


def test_run_prints_and_returns_exit_status(runtime, bundle_factory, container_id):
    done = runtime("run", "--bundle", bundle_factory(["echo", "hello", "world"]), container_id)
    assert done.stdout == "hello world\n"
    assert not os.path.exists(os.path.join(runtime.root, container_id)), "run deletes the container"


@pytest.mark.parametrize(("script", "status"), [("exit 3", 3), ("kill -9 $$", 137), ("kill -15 $$", 143)])
def test_run_exit_status_is_the_process_status(runtime, bundle_factory, container_id, script, status):
    # PID 1 ignores signals it has no handler for, so signal a child shell, as PID 1 exits with it.
    done = runtime("run", "--bundle", bundle_factory(["sh", "-c", f"sh -c '{script}'; exit $?"]), container_id,
                   check=False)
    assert done.returncode == status, done.stderr


def test_container_process_is_pid_1_inside(runtime, bundle_factory, container_id):
    done = runtime("run", "--bundle", bundle_factory(["sh", "-c", "echo $$; cut -d' ' -f4 /proc/1/stat"]),
                   container_id)
    assert done.stdout.split() == ["1", "0"]


def test_create_start_state_kill_delete(runtime, bundle_factory, container_id, tmp_path):
    bundle = bundle_factory(["sleep", "60"])
    pid_file = tmp_path / "pid"
    runtime("create", "--bundle", bundle, "--pid-file", str(pid_file), container_id)
    state = json.loads(runtime("state", container_id).stdout)
    assert state["status"] == "created"
    assert state["id"] == container_id
    assert state["bundle"] == bundle
    assert state["pid"] == int(pid_file.read_text())
    host_pid = state["pid"]
    assert os.path.exists(f"/proc/{host_pid}")
    # The init waits before exec: it is not yet `sleep`.
    assert "sleep" not in open(f"/proc/{host_pid}/cmdline").read()

    raw = json.loads(open(os.path.join(runtime.root, container_id, "state.json")).read())
    assert raw["init_process_pid"] == host_pid
    assert raw["init_process_start"] > 0
    assert raw["namespace_paths"]["NEWPID"] == f"/proc/{host_pid}/ns/pid"

    runtime("start", container_id)
    state = wait_for_status(runtime, container_id, "running")
    assert state["status"] == "running"
    assert open(f"/proc/{host_pid}/cmdline").read().split("\0")[0] == "sleep"

    done = runtime("start", container_id, check=False)
    assert done.returncode != 0 and "running" in done.stderr

    done = runtime("delete", container_id, check=False)
    assert done.returncode != 0 and "not stopped" in done.stderr

    runtime("kill", container_id, "KILL")
    state = wait_for_status(runtime, container_id, "stopped")
    assert state["status"] == "stopped"
    runtime("delete", container_id)
    assert not os.path.exists(os.path.join(runtime.root, container_id))
    assert runtime("state", container_id, check=False).returncode != 0


def test_kill_host_pid_stops_container_with_137(runtime, bundle_factory, container_id):
    bundle = bundle_factory(["sleep", "60"])
    proc = subprocess.Popen(runtime.cmd("run", "--bundle", bundle, container_id), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        state = wait_for_status(runtime, container_id, "running")
        os.kill(state["pid"], 9)
        assert proc.wait(timeout=10) == 137
    finally:
        proc.kill()
        proc.wait()


def test_kill_by_signal_number_and_name_and_all(runtime, bundle_factory, container_id):
    bundle = bundle_factory(["sh", "-c", "trap 'echo got-usr1; exit 7' USR1; sleep 60 & wait"])
    runtime("run", "-d", "--bundle", bundle, container_id)
    runtime("kill", container_id, "SIGUSR1")
    state = wait_for_status(runtime, container_id, "stopped")
    assert state["status"] == "stopped"
    runtime("delete", container_id)

    runtime("run", "--detach", "--bundle", bundle, container_id)
    runtime("kill", "--all", container_id, "9")
    assert wait_for_status(runtime, container_id, "stopped")["status"] == "stopped"
    done = runtime("kill", container_id, "NOSUCHSIG", check=False)
    assert done.returncode != 0


def test_delete_force_of_running_container(runtime, bundle_factory, container_id):
    runtime("run", "-d", "--bundle", bundle_factory(["sleep", "60"]), container_id)
    pid = json.loads(runtime("state", container_id).stdout)["pid"]
    runtime("delete", "--force", container_id)
    assert not os.path.exists(os.path.join(runtime.root, container_id))
    time.sleep(0.05)
    assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split(") ")[1][0] == "Z"


def test_delete_of_created_container_kills_its_init(runtime, bundle_factory, container_id):
    runtime("create", "--bundle", bundle_factory(["sleep", "60"]), container_id)
    runtime("delete", container_id)
    assert runtime("list", "-q").stdout == ""


def test_list_table_and_json(runtime, bundle_factory, container_id):
    bundle = bundle_factory(["sleep", "60"])
    runtime("create", "--bundle", bundle, container_id)
    table = runtime("list").stdout.splitlines()
    assert table[0].split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    assert table[1].split()[0] == container_id and table[1].split()[2] == "created"
    listed = json.loads(runtime("list", "--format", "json").stdout)
    assert [(c["id"], c["status"], c["bundle"]) for c in listed] == [(container_id, "created", bundle)]


def test_ps_lists_container_processes(runtime, bundle_factory, container_id):
    runtime("run", "-d", "--bundle", bundle_factory(["sh", "-c", "sleep 60 & sleep 61 & wait"]), container_id)
    time.sleep(0.2)
    pids = json.loads(runtime("ps", "--format", "json", container_id).stdout)
    assert len(pids) == 3
    table = runtime("ps", container_id).stdout
    assert "sleep 60" in table and "sleep 61" in table


def test_pause_and_resume(runtime, bundle_factory, container_id):
    runtime("run", "-d", "--bundle", bundle_factory(["sleep", "60"]), container_id)
    runtime("pause", container_id)
    state = json.loads(runtime("state", container_id).stdout)
    assert state["status"] == "paused"
    assert runtime("pause", container_id, check=False).returncode != 0
    runtime("resume", container_id)
    assert json.loads(runtime("state", container_id).stdout)["status"] == "running"
    assert runtime("resume", container_id, check=False).returncode != 0


def test_unknown_and_duplicate_ids_are_clear_errors(runtime, bundle_factory, container_id):
    for command in (["state"], ["start"], ["kill"], ["delete"], ["pause"], ["resume"], ["exec"]):
        done = runtime(*command, "nosuch", check=False)
        assert done.returncode == 1, command
        assert "container does not exist: nosuch" in done.stderr, command
    assert runtime("delete", "--force", "nosuch").returncode == 0
    bundle = bundle_factory(["sleep", "60"])
    runtime("create", "--bundle", bundle, container_id)
    done = runtime("create", "--bundle", bundle, container_id, check=False)
    assert done.returncode == 1 and f"container with id exists: {container_id}" in done.stderr
    done = runtime("create", "--bundle", bundle, "../evil", check=False)
    assert done.returncode == 1 and "invalid container id" in done.stderr


def _assert_nothing_left(runtime, container_id: str) -> None:
    assert not os.path.exists(os.path.join(runtime.root, container_id))
    for controller in ("memory", "pids", "cpu", "freezer"):
        own = open("/proc/self/cgroup").read()
        assert container_id not in subprocess.run(["find", f"/sys/fs/cgroup/{controller}", "-name", container_id],
                                                  capture_output=True, text=True).stdout, (controller, own)


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda c: c["process"].update(args=[]), "process.args"),
    (lambda c: c["linux"]["namespaces"].append({"type": "bogus"}), "linux.namespaces"),
    (lambda c: c["process"].update(cwd="relative"), "process.cwd"),
    (lambda c: c["mounts"].append({"destination": "/x", "type": "bind", "source": "/nonexistent-src",
                                   "options": ["bind"]}), "mounts"),
    (lambda c: c["process"].update(args=["/no/such/binary"]), "/no/such/binary"),
    (lambda c: c["process"].update(args=["nosuchcommand"]), "executable file not found"),
    (lambda c: c["root"].update(path="missing-rootfs"), "root.path"),
])
def test_bad_config_is_refused_and_leaves_nothing(runtime, bundle_factory, container_id, mutate, message):
    bundle = bundle_factory(["true"])
    config = read_config(bundle)
    mutate(config)
    write_config(bundle, config)
    done = runtime("create", "--bundle", bundle, container_id, check=False)
    assert done.returncode == 1
    assert message in done.stderr, done.stderr
    _assert_nothing_left(runtime, container_id)


def test_malformed_config_json(runtime, bundle_factory, container_id):
    bundle = bundle_factory(["true"])
    with open(os.path.join(bundle, "config.json"), "w") as f:
        f.write('{"ociVersion": "1.0.2", "process": ')
    done = runtime("create", "--bundle", bundle, container_id, check=False)
    assert done.returncode == 1 and "config.json" in done.stderr and "line 1" in done.stderr
    _assert_nothing_left(runtime, container_id)


def test_delete_force_removes_what_a_killed_create_left(runtime, container_id):
    half_made = os.path.join(runtime.root, container_id)
    os.makedirs(half_made)
    os.mkfifo(os.path.join(half_made, "exec.fifo"))
    assert runtime("state", container_id, check=False).returncode == 1
    runtime("delete", "--force", container_id)
    assert not os.path.exists(half_made)


def test_log_file_in_json_format(runtime, tmp_path):
    log = tmp_path / "runtime.log"
    done = subprocess.run([runtime.binary, "--root", runtime.root, "--log", str(log), "--log-format", "json",
                           "state", "nosuch"], capture_output=True, text=True)
    assert done.returncode == 1
    entry = json.loads(log.read_text().splitlines()[-1])
    assert entry["level"] == "error" and "nosuch" in entry["msg"]


def test_debug_goes_to_the_log(runtime, tmp_path):
    log = tmp_path / "debug.log"
    subprocess.run([runtime.binary, "--root", runtime.root, "--debug", "--log", str(log), "--log-format", "json",
                    "list"], check=True, capture_output=True)
    entry = json.loads(log.read_text().splitlines()[0])
    assert entry["level"] == "debug" and entry["msg"].startswith("list")


def test_go_style_single_dash_flags(runtime, bundle_factory, container_id):
    done = subprocess.run([runtime.binary, "-root", runtime.root, "run", "-bundle", bundle_factory(["echo", "ok"]),
                           container_id], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "ok\n"


def test_version_and_help():
    from conftest import ORLOP_RUNTIME

    out = subprocess.run([ORLOP_RUNTIME, "--version"], capture_output=True, text=True).stdout
    assert out.startswith("orlop-runtime version ") and "spec: 1.2" in out
    assert "create" in subprocess.run([ORLOP_RUNTIME, "--help"], capture_output=True, text=True).stdout
