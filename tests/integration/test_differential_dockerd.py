"""The same docker CLI commands against orlopd and dockerd (20.10, started by the test in a
network namespace of its own, with the same busybox image): the everyday mistakes users make
get the same exit status and the same words from both daemons (ids aside)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time

import pytest
from conftest import needs_root
from daemon_fixture import DOCKER, busybox_archive, running_daemon

pytestmark = [needs_root, pytest.mark.skipif(not shutil.which("dockerd"), reason="dockerd is not installed")]

# Commands run in this order against both daemons; state carries over from one to the next.
SCRIPT = [
    ["run", "-d", "--name", "ca", "busybox", "sleep", "300"],
    ["rm", "ca"],                                   # running: refused
    ["start", "ca"],
    ["pause", "ca"], ["pause", "ca"], ["unpause", "ca"], ["unpause", "ca"],
    ["rename", "ca", "ca"],
    ["create", "--name", "cb", "busybox", "true"],
    ["rename", "cb", "ca"],
    ["exec", "cb", "true"],                         # not running
    ["kill", "nosuch"],
    ["stop", "cb"],
    ["logs", "nosuch"],
    ["rm", "nosuch"],
    ["rmi", "nosuch:1"],
    ["inspect", "nosuch"],
    ["network", "rm", "nosuch"],
    ["volume", "rm", "nosuch"],
    ["network", "create", "bridge"],
    ["network", "rm", "bridge"],
    ["run", "--rm", "--name", "ca", "busybox", "true"],   # name taken
    ["run", "--rm", "-p", "99999:80", "busybox", "true"],
    ["run", "--rm", "--memory", "1k", "busybox", "true"],
    ["run", "--rm", "--cpus", "9", "busybox", "true"],
    ["run", "--rm", "--restart", "always", "busybox", "true"],
    ["run", "--rm", "--network", "nosuchnet", "busybox", "true"],
    ["run", "--rm", "-w", "relative", "busybox", "true"],
    ["run", "--rm", "--user", "nosuchuser", "busybox", "true"],
    ["wait", "cb"],
    ["tag", "busybox", "UPPER"],
    ["tag", "nosuch", "x"],
    ["rm", "-f", "cb"],
    ["volume", "create", "v1"], ["volume", "create", "v1"],
    ["run", "-d", "--name", "vu", "-v", "v1:/d", "busybox", "sleep", "300"],
    ["volume", "rm", "v1"],                        # in use
    ["network", "create", "n1"], ["network", "create", "n1"],
    ["network", "connect", "n1", "ca"], ["network", "connect", "n1", "ca"],
    ["network", "disconnect", "n1", "nosuch"],
    ["network", "connect", "nosuchnet", "ca"],
    ["network", "rm", "n1"],                       # in use
    ["exec", "nosuch", "true"],
    ["exec", "-u", "nosuchuser", "ca", "true"],
    ["exec", "-w", "relative", "ca", "true"],
    ["cp", "ca:/nonexistent", "/tmp/orlop-differential-out"],
    ["update", "--memory", "10m", "ca"],
    ["update", "--cpus", "50", "ca"],
    ["update", "--restart", "always", "nosuch"],
    ["commit", "nosuch", "x"],
    ["commit", "ca", "BAD:NAME"],
    ["diff", "nosuch"], ["export", "nosuch"], ["top", "nosuch"], ["stats", "--no-stream", "nosuch"],
    ["port", "ca", "80"],
    ["attach", "nosuch"], ["pause", "nosuch"], ["restart", "nosuch"], ["start", "nosuch"], ["wait", "nosuch"],
    ["rename", "nosuch", "x"], ["rm", "-v", "nosuch"],
    ["history", "nosuch"], ["image", "inspect", "nosuch"], ["push", "nosuch"],
    ["volume", "inspect", "nosuch"], ["network", "inspect", "nosuch"], ["container", "inspect", "nosuch"],
    ["rm", "-f", "ca", "vu"],
    ["volume", "rm", "v1"],
    ["network", "rm", "n1"],
]
# Where the two differ on purpose: the runtime's own words (runc's chain against orlop's).
EXIT_CODE_ONLY = [
    ["run", "--rm", "busybox", "/nonexistent"],
    ["run", "--rm", "busybox", "/etc"],
]


def _normalise(text: str) -> str:
    return re.sub(r"\b[0-9a-f]{12,64}\b", "<id>", text.strip())


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    base = tmp_path_factory.mktemp("differential")
    archive = busybox_archive(str(base))
    sock, log = str(base / "docker.sock"), str(base / "dockerd.log")
    proc = subprocess.Popen(["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", "dockerd",
                             "--data-root", str(base / "data"), "--exec-root", str(base / "exec"),
                             "-H", f"unix://{sock}", "--pidfile", str(base / "docker.pid"),
                             "--iptables=false", "--ip6tables=false"],
                            stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        env = {**os.environ, "DOCKER_HOST": f"unix://{sock}", "DOCKER_CONFIG": str(base / "cli")}
        deadline = time.monotonic() + 60
        while subprocess.run([DOCKER, "version"], env=env, capture_output=True).returncode != 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.skip(f"dockerd does not start here: {open(log).read()[-500:]}")
            time.sleep(0.2)
        subprocess.run([DOCKER, "load", "-i", archive], env=env, check=True, capture_output=True)

        def dockerd(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run([DOCKER, *args], env=env, capture_output=True, text=True, timeout=60,
                                  stdin=subprocess.DEVNULL)

        with running_daemon() as orlopd:
            yield (lambda *args: orlopd.docker(*args, check=False)), dockerd
    finally:
        subprocess.run([DOCKER, "rm", "-f", *subprocess.run([DOCKER, "ps", "-aq"], env=env, capture_output=True,
                                                           text=True).stdout.split()], env=env, capture_output=True)
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        with open("/proc/self/mountinfo") as f:
            points = [line.split()[4] for line in f if line.split()[4].startswith(str(base))]
        for point in sorted(points, key=len, reverse=True):
            subprocess.run(["umount", "-l", point], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def test_everyday_mistakes_are_answered_as_dockerd_answers_them(both):
    orlopd, dockerd = both
    differences = []
    for command in SCRIPT:
        ours, theirs = orlopd(*command), dockerd(*command)
        if ours.returncode != theirs.returncode or \
                _normalise(ours.stdout + ours.stderr) != _normalise(theirs.stdout + theirs.stderr):
            differences.append(f"docker {' '.join(command)}\n  orlopd:  {ours.returncode} "
                               f"{_normalise(ours.stdout + ours.stderr)}\n  dockerd: {theirs.returncode} "
                               f"{_normalise(theirs.stdout + theirs.stderr)}")
    for command in EXIT_CODE_ONLY:
        ours, theirs = orlopd(*command), dockerd(*command)
        if ours.returncode != theirs.returncode:
            differences.append(f"docker {' '.join(command)}: exit {ours.returncode}, dockerd's {theirs.returncode}")
    assert not differences, "\n".join(differences)
