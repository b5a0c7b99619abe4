"""Live restore: `kill -9` of orlopd while containers run, then a new orlopd on the same
roots finds them running and fully manageable, and exits that happened meanwhile recorded."""

from __future__ import annotations

import os
import time

import pytest
from conftest import needs_root
from daemon_fixture import DOCKER, running_daemon

pytestmark = [needs_root, pytest.mark.skipif(not os.path.exists(DOCKER), reason="no docker CLI")]


def wait_for(predicate, timeout: float = 10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


@pytest.mark.parametrize("runtime", ["orlop-runtime", "runc"])
def test_kill_9_of_the_daemon_leaves_containers_manageable(runtime):
    with running_daemon(runtime) as d:
        d.docker("run", "-d", "--name", "ticker", "busybox", "sh", "-c",
                 "trap 'exit 0' TERM; i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done")
        d.docker("run", "-d", "--name", "short", "busybox", "sh", "-c", "sleep 1; exit 4")
        d.docker("run", "-d", "--name", "steady", "busybox", "sleep", "1000")
        pid = int(d.docker("inspect", "-f", "{{.State.Pid}}", "ticker").stdout)
        d.kill()
        time.sleep(1.5)  # `short` exits while no daemon listens: its shim records the exit
        assert os.path.exists(f"/proc/{pid}")
        d.start()
        status = d.docker("ps", "-a", "--format", "{{.Names}} {{.Status}}").stdout
        assert "ticker Up" in status and "steady Up" in status
        assert "short Exited (4)" in status
        assert d.docker("inspect", "-f", "{{.State.Pid}}", "ticker").stdout.strip() == str(pid)
        before = d.docker("logs", "ticker").stdout.count("tick")
        wait_for(lambda: d.docker("logs", "ticker").stdout.count("tick") > before)  # logs still written
        assert d.docker("exec", "ticker", "echo", "exec-ok").stdout == "exec-ok\n"
        d.docker("stop", "ticker")
        assert d.docker("inspect", "-f", "{{.State.ExitCode}} {{.State.Running}}", "ticker").stdout.strip() \
            == "0 false"
        assert not os.path.exists(f"/proc/{pid}")
        # a wait started after the restart sees the next exit of a restored container
        d.docker("kill", "steady")
        assert d.docker("wait", "steady").stdout.strip() == "137"
        d.docker("rm", "ticker", "short", "steady")
        assert d._shim_pids() == []


def test_the_daemon_restarted_twice_does_not_duplicate_or_leak():
    with running_daemon() as d:
        d.docker("run", "-d", "--name", "one", "busybox", "sleep", "1000")
        for _ in range(2):
            d.kill()
            d.start()
        assert d.docker("ps", "-q").stdout.count("\n") == 1
        assert len(d._shim_pids()) == 1
        d.docker("rm", "-f", "one")
        assert d._shim_pids() == []


def test_restart_policies_at_daemon_start_and_paused_containers():
    with running_daemon() as d:
        d.docker("run", "-d", "--name", "paused", "busybox", "sleep", "1000")
        d.docker("pause", "paused")
        d.docker("run", "-d", "--name", "always", "--restart", "always", "busybox", "sleep", "1000")
        d.docker("run", "-d", "--name", "unless", "--restart", "unless-stopped", "busybox", "sleep", "1000")
        d.docker("stop", "-t", "0", "always", "unless")
        d.stop()
        d.start()
        wait_for(lambda: d.docker("inspect", "-f", "{{.State.Running}}", "always").stdout.strip() == "true")
        assert d.docker("inspect", "-f", "{{.State.Status}}", "paused").stdout.strip() == "paused"
        assert d.docker("inspect", "-f", "{{.State.Running}}", "unless").stdout.strip() == "false"
        d.docker("unpause", "paused")
        assert d.docker("exec", "paused", "true").returncode == 0


def test_what_a_crash_mid_create_leaves_is_reclaimed_at_start():
    from orlop.snapshots import OverlaySnapshotter

    with running_daemon() as d:
        cid = d.docker("create", "busybox", "true").stdout.strip()
        d.kill()
        snapshots = OverlaySnapshotter(os.path.join(d.data_root, "snapshots"))
        orphan = "f" * 64  # a container snapshot whose record was never written
        snapshots.prepare(orphan, next(i.parent for i in snapshots.walk() if i.name == cid))
        os.makedirs(os.path.join(d.data_root, "containers", "e" * 64))  # a half-made container directory
        os.makedirs(os.path.join(d.exec_root, "c", "d" * 64))  # runtime state of a container now gone
        d.start()
        names = {i.name for i in OverlaySnapshotter(os.path.join(d.data_root, "snapshots")).walk()}
        assert orphan not in names and cid in names
        assert not os.path.exists(os.path.join(d.data_root, "containers", "e" * 64))
        assert not os.path.exists(os.path.join(d.exec_root, "c", "d" * 64))
        assert d.docker("ps", "-aq", "--no-trunc").stdout.split() == [cid]
