"""seccomp in containers: actions, errno values, argument conditions, flags and
Docker's default profile, checked from inside the container."""

from __future__ import annotations

import os

import pytest
from busybox_bundle import default_config
from conftest import needs_root
from seccomp_profiles import DOCKER_DEFAULT_CAPS, DOCKER_PROFILE, docker_default_profile

pytestmark = needs_root


def run_with(runtime, bundle_factory, container_id, profile: dict, script: str, config: dict | None = None):
    config = config or default_config()
    config["linux"]["seccomp"] = profile
    return runtime("run", "--bundle", bundle_factory(["sh", "-c", script], config), container_id, check=False)


def test_errno_action_with_errno_ret(runtime, bundle_factory, container_id):
    profile = {"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]}
    done = run_with(runtime, bundle_factory, container_id, profile, "mkdir /dev/shm/x; echo status=$?")
    assert "Function not implemented" in done.stderr  # ENOSYS is 38
    assert "status=1" in done.stdout


def test_default_errno_is_eperm_and_status_shows_filter(runtime, bundle_factory, container_id):
    profile = {"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": ["sethostname"], "action": "SCMP_ACT_ERRNO"}]}
    done = run_with(runtime, bundle_factory, container_id, profile,
                    "hostname other; grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status")
    assert "Operation not permitted" in done.stderr
    assert "Seccomp:\t2" in done.stdout and "NoNewPrivs:\t1" in done.stdout


def test_argument_conditions(runtime, bundle_factory, container_id):
    # Refuse personality(0xffffffff) (a query) but allow other personality calls.
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
         "args": [{"index": 1, "value": 10, "op": "SCMP_CMP_EQ"}]}]}
    done = run_with(runtime, bundle_factory, container_id, profile,
                    "sleep 30 & kill -USR1 $!; echo usr1=$?; kill -TERM $!; echo term=$?")
    assert "usr1=1" in done.stdout and "term=0" in done.stdout
    assert "Permission denied" in done.stderr  # EACCES is 13


def test_kill_process_action(runtime, bundle_factory, container_id):
    profile = {"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": ["uname"], "action": "SCMP_ACT_KILL_PROCESS"}]}
    done = run_with(runtime, bundle_factory, container_id, profile, "uname; echo survived")
    assert "survived" not in done.stdout
    assert done.returncode == 128 + 31  # SIGSYS


def test_log_action_allows(runtime, bundle_factory, container_id):
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_LOG"],
               "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_LOG"}]}
    done = run_with(runtime, bundle_factory, container_id, profile, "cd /dev && pwd")
    assert done.stdout.strip() == "/dev"


def test_filter_without_no_new_privileges_for_a_non_root_user(runtime, bundle_factory, container_id):
    config = default_config()
    config["process"]["noNewPrivileges"] = False
    config["process"]["user"] = {"uid": 1000, "gid": 1000}
    profile = {"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}
    done = run_with(runtime, bundle_factory, container_id, profile,
                    "mkdir /dev/shm/x; grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status", config)
    assert "Operation not permitted" in done.stderr
    assert "Seccomp:\t2" in done.stdout and "NoNewPrivs:\t0" in done.stdout


@pytest.mark.skipif(not os.path.exists(DOCKER_PROFILE), reason="scripts/setup fetches Docker's profile")
def test_docker_default_profile(runtime, bundle_factory, container_id):
    config = default_config()
    caps = list(DOCKER_DEFAULT_CAPS)
    config["process"]["capabilities"] = {k: caps for k in ("bounding", "effective", "permitted")}
    script = "echo shell-works; ls / > /dev/null && echo ls-works; probe unshare mount keyctl getpid"
    done = run_with(runtime, bundle_factory, container_id, docker_default_profile(), script, config)
    assert done.stdout.splitlines() == ["shell-works", "ls-works", "unshare errno=1", "mount errno=1",
                                        "keyctl errno=1", "getpid ok"], done.stderr


def test_same_calls_are_allowed_without_a_profile(runtime, bundle_factory, container_id):
    """The control for the test above: without seccomp (but with its capabilities) the calls
    go through or fail for other reasons than EPERM from a filter."""
    config = default_config()
    config["process"]["capabilities"] = {k: ["CAP_SYS_ADMIN"] for k in ("bounding", "effective", "permitted")}
    config["root"]["readonly"] = False
    out = runtime("run", "--bundle", bundle_factory(["probe", "unshare", "keyctl"], config), container_id).stdout
    assert out.splitlines() == ["unshare ok", "keyctl ok"]


def test_trap_action_delivers_sigsys(runtime, bundle_factory, container_id):
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["uname"], "action": "SCMP_ACT_TRAP"}]}
    done = run_with(runtime, bundle_factory, container_id, profile, "uname; echo survived")
    assert done.returncode == 128 + 31 and "survived" not in done.stdout


def test_trace_action_without_a_tracer_fails_the_call(runtime, bundle_factory, container_id):
    profile = {"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_TRACE", "errnoRet": 1}]}
    done = run_with(runtime, bundle_factory, container_id, profile, "mkdir /dev/shm/t; echo status=$?")
    assert "status=1" in done.stdout and "Function not implemented" in done.stderr


def test_notify_action_hands_the_listener_fd(runtime, bundle_factory, container_id, tmp_path):
    """The listener gets the notify fd with the seccomp state; once it closes it, the
    notified call fails with ENOSYS (the kernel's answer when nobody listens)."""
    import json
    import socket
    import threading

    sock_path = str(tmp_path / "seccomp-agent.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(sock_path)
    server.listen(1)
    received = {}

    def agent():
        conn, _ = server.accept()
        message, fds, _, _ = socket.recv_fds(conn, 65536, 1)
        received["state"] = json.loads(message)
        received["fds"] = len(fds)
        for fd in fds:
            os.close(fd)
        conn.close()

    thread = threading.Thread(target=agent, daemon=True)
    thread.start()
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": sock_path, "listenerMetadata": "hello",
               "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]}
    done = run_with(runtime, bundle_factory, container_id, profile, "sleep 0.3; mkdir /dev/shm/n; echo status=$?")
    thread.join(5)
    server.close()
    assert received["fds"] == 1
    assert received["state"]["fds"] == ["seccompFd"] and received["state"]["metadata"] == "hello"
    assert received["state"]["state"]["id"] == container_id
    assert "status=1" in done.stdout
