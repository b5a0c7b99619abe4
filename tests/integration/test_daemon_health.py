"""Health checks through the docker CLI, docker-py and the orlop CLI: passing and failing
probes, retries and the start period, a probe killed at its timeout, the image's
HEALTHCHECK (built with POST /build) and --no-healthcheck, health_status and exec events,
`ps` and its health= filter, stop/start and pause, and monitoring that resumes after orlopd
is restarted with the container still running."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest
from conftest import needs_root
from daemon_fixture import DOCKER, REPO, running_daemon

pytestmark = [needs_root, pytest.mark.skipif(not os.path.exists(DOCKER), reason="no docker CLI")]

ORLOP = os.path.join(REPO, ".venv", "bin", "orlop")
FAST = ("--health-interval", "300ms")


@pytest.fixture(scope="module")
def daemon():
    with running_daemon() as d:
        yield d


def wait_for(predicate, timeout: float = 20, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")


def health(daemon, name: str) -> dict | None:
    return json.loads(daemon.docker("inspect", "-f", "{{json .State.Health}}", name).stdout)


def status(daemon, name: str) -> str | None:
    return (health(daemon, name) or {}).get("Status")


def ps_status(daemon, name: str) -> str:
    return daemon.docker("ps", "-a", "--filter", f"name=^{name}$", "--format", "{{.Status}}").stdout.strip()


def events(daemon, since: float, *filters: str) -> list[dict]:
    args = [arg for f in filters for arg in ("--filter", f)]
    out = daemon.docker("events", "--since", f"{since:.9f}", "--until", f"{time.time() + 1:.9f}", *args,
                        "--format", "{{json .}}").stdout
    return [json.loads(line) for line in out.splitlines()]


def test_a_passing_check_turns_healthy(daemon):
    since = time.time()
    daemon.docker("run", "-d", "--name", "fine", "--health-cmd", "echo alive; echo to-stderr >&2", *FAST,
                  "busybox", "sleep", "1000")
    wait_for(lambda: status(daemon, "fine") == "healthy")
    state = health(daemon, "fine")
    assert state["FailingStreak"] == 0
    assert state["Log"] and all(entry["ExitCode"] == 0 for entry in state["Log"])
    assert state["Log"][-1]["Output"] == "alive\nto-stderr\n"
    assert state["Log"][-1]["Start"] <= state["Log"][-1]["End"]
    assert ps_status(daemon, "fine").endswith("(healthy)") and ps_status(daemon, "fine").startswith("Up ")
    config = json.loads(daemon.docker("inspect", "-f", "{{json .Config.Healthcheck}}", "fine").stdout)
    assert config == {"Test": ["CMD-SHELL", "echo alive; echo to-stderr >&2"], "Interval": 300_000_000}
    # one status change, and each probe is an exec as dockerd reports them
    changes = [e["Action"] for e in events(daemon, since, "container=fine", "event=health_status")]
    assert changes == ["health_status: healthy"]
    probe = [e for e in events(daemon, since, "container=fine") if e["Action"].startswith("exec_")][:3]
    assert [e["Action"] for e in probe] == ["exec_create: /bin/sh -c echo alive; echo to-stderr >&2",
                                            "exec_start: /bin/sh -c echo alive; echo to-stderr >&2", "exec_die"]
    assert probe[2]["Actor"]["Attributes"]["exitCode"] == "0"
    assert probe[2]["Actor"]["Attributes"]["name"] == "fine"
    assert len({e["Actor"]["Attributes"]["execID"] for e in probe}) == 1
    # finished probes do not pile up in the container's ExecIDs
    assert len(json.loads(daemon.docker("inspect", "-f", "{{json .ExecIDs}}", "fine").stdout) or []) <= 1
    daemon.docker("rm", "-f", "fine")


def test_a_check_that_has_not_run_yet_is_starting(daemon):
    daemon.docker("run", "-d", "--name", "early", "--health-cmd", "true", "--health-interval", "1h", "busybox",
                  "sleep", "1000")
    assert health(daemon, "early") == {"Status": "starting", "FailingStreak": 0, "Log": []}
    assert ps_status(daemon, "early").endswith("(health: starting)")
    daemon.docker("rm", "-f", "early")


def test_a_failing_check_turns_unhealthy_after_the_retries(daemon):
    since = time.time()
    daemon.docker("run", "-d", "--name", "sick", "--health-cmd", "echo failing; exit 3", *FAST,
                  "--health-retries", "3", "busybox", "sleep", "1000")
    seen = []

    def sample():
        state = health(daemon, "sick")
        seen.append((state["Status"], state["FailingStreak"], len(state["Log"])))
        return state["Status"] == "unhealthy"

    wait_for(sample, interval=0.02)
    # starting while fewer than 3 failed, unhealthy from the third
    assert all(streak < 3 for s, streak, _ in seen if s == "starting")
    assert all(streak >= 3 for s, streak, _ in seen if s == "unhealthy")
    assert any(s == "starting" and n >= 1 for s, _, n in seen), seen  # failures seen before it turned
    state = health(daemon, "sick")
    assert all(entry["ExitCode"] == 3 and entry["Output"] == "failing\n" for entry in state["Log"])
    assert ps_status(daemon, "sick").endswith("(unhealthy)")
    wait_for(lambda: len(health(daemon, "sick")["Log"]) == 5 and health(daemon, "sick")["FailingStreak"] >= 6)
    assert len(health(daemon, "sick")["Log"]) == 5  # the last five only
    changes = [e["Action"] for e in events(daemon, since, "container=sick", "event=health_status")]
    assert changes == ["health_status: unhealthy"]
    daemon.docker("rm", "-f", "sick")


def test_the_start_period_forgives_failures_but_not_a_success(daemon):
    daemon.docker("run", "-d", "--name", "booting", "--health-cmd", "cat /tmp/ready", *FAST, "--health-retries", "1",
                  "--health-start-period", "1h", "--health-start-interval", "200ms", "busybox", "sleep", "1000")
    wait_for(lambda: len(health(daemon, "booting")["Log"]) >= 3)
    state = health(daemon, "booting")
    assert state["Status"] == "starting" and state["FailingStreak"] == 0
    assert all(entry["ExitCode"] == 1 for entry in state["Log"])
    daemon.docker("exec", "booting", "sh", "-c", "echo ready > /tmp/ready")
    wait_for(lambda: status(daemon, "booting") == "healthy")
    assert health(daemon, "booting")["Log"][-1]["Output"] == "ready\n"
    daemon.docker("exec", "booting", "rm", "/tmp/ready")  # healthy once: failures count from now on
    wait_for(lambda: status(daemon, "booting") == "unhealthy")
    daemon.docker("rm", "-f", "booting")


def test_a_probe_outlasting_its_timeout_is_killed(daemon):
    client = daemon.client()
    container = client.containers.run("busybox", "sleep 1000", name="stuck", detach=True, healthcheck={
        "test": ["CMD", "sleep", "77"], "interval": 300_000_000, "timeout": 500_000_000, "retries": 1})
    try:
        wait_for(lambda: status(daemon, "stuck") == "unhealthy")
        entry = health(daemon, "stuck")["Log"][0]
        assert entry["ExitCode"] == -1
        assert entry["Output"] == "Health check exceeded timeout (500ms)"
        # killed, not left running: no `sleep 77` stays in the container
        wait_for(lambda: "sleep 77" not in daemon.docker("top", "stuck").stdout)
        container.reload()
        assert container.attrs["State"]["Health"]["Status"] == "unhealthy"
        assert container.attrs["State"]["Running"]
    finally:
        container.remove(force=True)


def test_the_images_healthcheck_is_used_and_no_healthcheck_disables_it(daemon, tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_BUILDKIT", "0")
    (tmp_path / "Dockerfile").write_text(
        "FROM busybox\nHEALTHCHECK --interval=300ms --timeout=2s --retries=1 CMD echo from-image\n")
    daemon.docker("build", "-t", "checked:1", str(tmp_path))
    image_check = json.loads(daemon.docker("image", "inspect", "-f", "{{json .Config.Healthcheck}}",
                                           "checked:1").stdout)
    assert image_check["Test"] == ["CMD-SHELL", "echo from-image"]

    daemon.docker("run", "-d", "--name", "imaged", "checked:1", "sleep", "1000")
    wait_for(lambda: status(daemon, "imaged") == "healthy")
    assert health(daemon, "imaged")["Log"][-1]["Output"] == "from-image\n"

    # the container's fields over the image's: its command, the image's interval and retries
    daemon.docker("run", "-d", "--name", "overridden", "--health-cmd", "echo mine; exit 1", "checked:1",
                  "sleep", "1000")
    config = json.loads(daemon.docker("inspect", "-f", "{{json .Config.Healthcheck}}", "overridden").stdout)
    assert config == {**image_check, "Test": ["CMD-SHELL", "echo mine; exit 1"]}
    wait_for(lambda: status(daemon, "overridden") == "unhealthy")  # retries 1, from the image
    assert health(daemon, "overridden")["Log"][-1]["Output"] == "mine\n"

    daemon.docker("run", "-d", "--name", "unchecked", "--no-healthcheck", "checked:1", "sleep", "1000")
    config = json.loads(daemon.docker("inspect", "-f", "{{json .Config.Healthcheck}}", "unchecked").stdout)
    assert config["Test"] == ["NONE"]
    time.sleep(1.2)  # four intervals of the image's check
    assert health(daemon, "unchecked") is None
    assert not ps_status(daemon, "unchecked").endswith(")")
    since = time.time() - 2
    assert not [e for e in events(daemon, since, "container=unchecked") if e["Action"].startswith("exec_")]
    daemon.docker("rm", "-f", "imaged", "overridden", "unchecked")


def test_the_health_filter_of_ps(daemon):
    daemon.docker("run", "-d", "--name", "f-good", "--health-cmd", "true", *FAST, "busybox", "sleep", "1000")
    daemon.docker("run", "-d", "--name", "f-bad", "--health-cmd", "false", *FAST, "--health-retries", "1",
                  "busybox", "sleep", "1000")
    daemon.docker("run", "-d", "--name", "f-wait", "--health-cmd", "true", "--health-interval", "1h", "busybox",
                  "sleep", "1000")
    daemon.docker("run", "-d", "--name", "f-none", "busybox", "sleep", "1000")
    wait_for(lambda: status(daemon, "f-good") == "healthy" and status(daemon, "f-bad") == "unhealthy")

    def names(value: str) -> set[str]:
        out = daemon.docker("ps", "--filter", f"health={value}", "--format", "{{.Names}}").stdout.split()
        return {n for n in out if n.startswith("f-")}

    assert names("healthy") == {"f-good"}
    assert names("unhealthy") == {"f-bad"}
    assert names("starting") == {"f-wait"}
    assert names("none") == {"f-none"}
    done = daemon.docker("ps", "--filter", "health=sickly", check=False)
    assert done.returncode != 0
    assert "invalid filter 'health=sickly'" in done.stderr and "none, starting, healthy, unhealthy" in done.stderr
    found = daemon.client().containers.list(filters={"health": "healthy"})
    assert [c.name for c in found if c.name.startswith("f-")] == ["f-good"]
    daemon.docker("rm", "-f", "f-good", "f-bad", "f-wait", "f-none")


def test_stop_start_and_pause(daemon):
    daemon.docker("run", "-d", "--name", "cycled", "--health-cmd", "echo up", *FAST, "busybox", "sleep", "1000")
    wait_for(lambda: status(daemon, "cycled") == "healthy")
    daemon.docker("stop", "-t", "1", "cycled")
    stopped = health(daemon, "cycled")
    assert stopped["Status"] == "unhealthy"  # dockerd's: a stopped monitor leaves "unhealthy"
    assert stopped["Log"] and stopped["Log"][-1]["ExitCode"] == 0
    time.sleep(0.8)
    assert health(daemon, "cycled")["Log"] == stopped["Log"]  # no probe while stopped
    daemon.docker("start", "cycled")
    assert status(daemon, "cycled") in ("starting", "healthy")
    wait_for(lambda: status(daemon, "cycled") == "healthy")

    daemon.docker("pause", "cycled")
    time.sleep(0.5)  # a probe under way when it paused finishes (frozen) later, if ever
    before = health(daemon, "cycled")["Log"][-1]
    time.sleep(1.2)
    assert health(daemon, "cycled")["Log"][-1] == before  # no probe while paused
    assert ps_status(daemon, "cycled").endswith("(Paused)")
    daemon.docker("unpause", "cycled")
    wait_for(lambda: health(daemon, "cycled")["Log"][-1]["Start"] > before["Start"]
             and status(daemon, "cycled") == "healthy")
    daemon.docker("rm", "-f", "cycled")


def test_the_orlop_cli_sets_and_shows_health(daemon):
    env = {**os.environ, "ORLOP_HOST": daemon.host}

    def orlop(*args: str) -> str:
        done = subprocess.run([ORLOP, *args], capture_output=True, text=True, env=env, timeout=60,
                              stdin=subprocess.DEVNULL)
        assert done.returncode == 0, done.stderr
        return done.stdout

    orlop("run", "-d", "--name", "o-check", "--health-cmd", "exit 1", "--health-interval", "300ms",
          "--health-retries", "2", "--health-timeout", "2s", "busybox", "sleep", "1000")
    config = json.loads(daemon.docker("inspect", "-f", "{{json .Config.Healthcheck}}", "o-check").stdout)
    assert config == {"Test": ["CMD-SHELL", "exit 1"], "Interval": 300_000_000, "Timeout": 2_000_000_000,
                      "Retries": 2}
    wait_for(lambda: status(daemon, "o-check") == "unhealthy")
    assert "(unhealthy)" in orlop("ps", "--filter", "name=o-check")
    assert orlop("ps", "--filter", "health=unhealthy", "--format", "{{.Names}}").split() == ["o-check"]
    orlop("create", "--name", "o-off", "--no-healthcheck", "busybox")
    assert json.loads(daemon.docker("inspect", "-f", "{{json .Config.Healthcheck}}", "o-off").stdout) == {
        "Test": ["NONE"]}
    daemon.docker("rm", "-f", "o-check", "o-off")


def test_a_bad_healthcheck_is_refused_at_create(daemon):
    client = daemon.client()
    import docker

    with pytest.raises(docker.errors.APIError) as caught:
        client.containers.create("busybox", "true", healthcheck={"test": ["CMD", "true"], "interval": 1000})
    assert caught.value.status_code == 400
    assert "Interval in Healthcheck cannot be less than 1ms" in str(caught.value)


def test_monitoring_resumes_after_the_daemon_restarts():
    with running_daemon() as d:
        d.docker("run", "-d", "--name", "kept", "--health-cmd", "cat /tmp/flag", *FAST, "--health-retries", "1",
                 "busybox", "sh", "-c", "echo on > /tmp/flag; exec sleep 1000")
        wait_for(lambda: status(d, "kept") == "healthy")
        d.kill()  # kill -9: the container goes on
        d.start()
        restored = health(d, "kept")
        assert restored["Log"] and restored["Log"][-1]["Output"] == "on\n"  # kept on disk
        restarted = time.time()
        wait_for(lambda: status(d, "kept") == "healthy")
        d.docker("exec", "kept", "rm", "/tmp/flag")  # probes of the new daemon see it
        wait_for(lambda: status(d, "kept") == "unhealthy")
        last = health(d, "kept")["Log"][-1]
        assert last["ExitCode"] == 1 and "No such file" in last["Output"]
        changes = [e["Action"] for e in events(d, restarted - 0.5, "container=kept", "event=health_status")]
        assert changes[-1] == "health_status: unhealthy"
        # and after a graceful restart too
        d.stop()
        d.start()
        d.docker("exec", "kept", "sh", "-c", "echo back > /tmp/flag")
        wait_for(lambda: status(d, "kept") == "healthy")
        assert health(d, "kept")["Log"][-1]["Output"] == "back\n"
