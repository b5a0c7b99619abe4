"""Resource limits through the docker CLI and docker-py: OOM kills reported (OOMKilled, exit
137, the `oom` event before `die`), a pids limit that stops a fork bomb, each limit seen in
the container's cgroup (read from the host) or from inside, Docker's refusals and warnings,
`update` of a running, paused or stopped container (also under runc), and `stats`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

import pytest
from conftest import needs_root
from daemon_fixture import DOCKER, running_daemon

from orlop.containers.host_support import detect

pytestmark = [needs_root, pytest.mark.skipif(not os.path.exists(DOCKER), reason="no docker CLI")]

HOST = detect()
V1 = HOST.version == 1
MiB = 1 << 20


@pytest.fixture(scope="module")
def daemon():
    with running_daemon() as d:
        yield d


def cgroup_file(daemon, name: str, controller: str, filename: str) -> str:
    """A file of the container's cgroup, read from the host (found through its init's /proc/<pid>/cgroup)."""
    pid = int(daemon.docker("inspect", "-f", "{{.State.Pid}}", name).stdout)
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            if V1 and controller in controllers.split(","):
                directory = f"/sys/fs/cgroup/{controller}{path}"
                break
            if not V1 and controllers == "":
                directory = f"/sys/fs/cgroup{path}"
                break
        else:
            raise AssertionError(f"no {controller} cgroup for {name}")
    with open(os.path.join(directory, filename)) as f:
        return f.read().strip()


def memory_limit(daemon, name: str) -> int:
    text = cgroup_file(daemon, name, "memory", "memory.limit_in_bytes" if V1 else "memory.max")
    return int(text)


def inspect(daemon, name: str, template: str) -> str:
    return daemon.docker("inspect", "-f", template, name).stdout.strip()


def events(daemon, since: float, name: str) -> list[str]:
    out = daemon.docker("events", "--since", f"{since:.3f}", "--until", f"{time.time() + 0.5:.3f}", "--filter",
                        f"container={name}", "--format", "{{.Action}}").stdout
    return out.split()


def wait_for(predicate, timeout: float = 10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


# -- OOM ------------------------------------------------------------------------------------------

def test_a_container_past_its_memory_limit_is_oom_killed_and_reported(daemon):
    since = time.time()
    done = daemon.docker("run", "--name", "oomer", "--memory", "32m", "busybox", "sh", "-c",
                         'x=$(head -c 100m /dev/zero | tr "\\0" a); echo survived', check=False)
    assert done.returncode == 137 and "survived" not in done.stdout
    assert inspect(daemon, "oomer", "{{.State.OOMKilled}} {{.State.ExitCode}}") == "true 137"
    actions = events(daemon, since, "oomer")
    assert actions.count("oom") == 1 and actions.index("oom") < actions.index("die"), actions
    daemon.docker("rm", "oomer")


def test_an_oom_kill_of_a_child_is_reported_though_the_init_exits_0(daemon):
    """As dockerd: OOMKilled says the OOM killer struck in the container, not that it killed the init."""
    since = time.time()
    done = daemon.docker("run", "--name", "childoom", "--memory", "32m", "busybox", "sh", "-c",
                         "tail /dev/zero; echo tail ended $?")
    assert done.stdout == "tail ended 137\n"
    assert inspect(daemon, "childoom", "{{.State.OOMKilled}} {{.State.ExitCode}}") == "true 0"
    actions = events(daemon, since, "childoom")
    assert actions.count("oom") == 1 and actions.index("oom") < actions.index("die"), actions
    daemon.docker("rm", "childoom")


def test_an_oom_kill_in_a_running_container_is_an_event_at_once(daemon):
    daemon.docker("run", "-d", "--name", "survivor", "--memory", "32m", "busybox", "sh", "-c",
                  "while true; do sleep 1000 & wait; done")
    since = time.time()
    done = daemon.docker("exec", "survivor", "tail", "/dev/zero", check=False)
    assert done.returncode == 137
    wait_for(lambda: "oom" in events(daemon, since, "survivor"))
    assert inspect(daemon, "survivor", "{{.State.Running}} {{.State.OOMKilled}}") == "true true"
    daemon.docker("rm", "-f", "survivor")
    actions = events(daemon, since, "survivor")
    assert actions.count("oom") == 1 and actions.index("oom") < actions.index("die"), actions


def test_docker_info_reports_what_the_cgroups_support(daemon):
    out = daemon.docker("info", "--format", "{{.MemoryLimit}} {{.SwapLimit}} {{.OomKillDisable}} {{.PidsLimit}} "
                        "{{.CPUSet}} {{.CgroupVersion}}").stdout.split()
    assert out == [str(v).lower() for v in (HOST.memory, HOST.swap, HOST.oom_kill_disable, HOST.pids, HOST.cpuset)] \
        + [str(HOST.version)]


def test_a_kill_or_an_exit_under_the_limit_is_not_an_oom(daemon):
    daemon.docker("run", "-d", "--name", "killed", "--memory", "32m", "busybox", "sleep", "1000")
    daemon.docker("kill", "killed")
    assert daemon.docker("wait", "killed").stdout.strip() == "137"
    assert inspect(daemon, "killed", "{{.State.OOMKilled}}") == "false"
    daemon.docker("run", "--name", "small", "--memory", "32m", "busybox", "sh", "-c", "x=$(head -c 1m /dev/zero)")
    assert inspect(daemon, "small", "{{.State.OOMKilled}} {{.State.ExitCode}}") == "false 0"
    daemon.docker("rm", "killed", "small")


def test_oom_kill_through_docker_py(daemon):
    client = daemon.client()
    try:
        container = client.containers.run("busybox", ["tail", "/dev/zero"], mem_limit="32m", detach=True)
        assert container.wait(timeout=60)["StatusCode"] == 137
        container.reload()
        assert container.attrs["State"]["OOMKilled"] is True
        assert container.attrs["HostConfig"]["Memory"] == 32 * MiB
        assert container.attrs["HostConfig"]["MemorySwap"] == 64 * MiB, "swap is twice the memory, as Docker's"
        container.remove()
    finally:
        client.close()


def test_oom_kill_disable(daemon):
    done = daemon.docker("run", "-d", "--name", "nokill", "--memory", "32m", "--oom-kill-disable", "busybox",
                         "sh", "-c", 'x=$(head -c 100m /dev/zero | tr "\\0" a); echo survived')
    if not V1:
        assert "Your kernel does not support OomKillDisable. OomKillDisable discarded." in done.stderr
        assert inspect(daemon, "nokill", "{{.HostConfig.OomKillDisable}}") == "false"
    else:
        assert "oom_kill_disable 1" in cgroup_file(daemon, "nokill", "memory", "memory.oom_control")
        # The allocation stops at the limit and waits there instead of being killed.
        wait_for(lambda: "under_oom 1" in cgroup_file(daemon, "nokill", "memory", "memory.oom_control"), 30)
        assert inspect(daemon, "nokill", "{{.State.Running}}") == "true"
    daemon.docker("rm", "-f", "nokill")
    done = daemon.docker("run", "--rm", "--oom-kill-disable", "busybox", "true")
    assert "WARNING: OOM killer is disabled for the container, but no memory limit is set" in done.stderr or not V1


# -- pids -----------------------------------------------------------------------------------------

def test_pids_limit_stops_a_fork_bomb_and_the_container_survives(daemon):
    # The init is a shell that reaps what is orphaned to it (as --init would).
    daemon.docker("run", "-d", "--name", "bombed", "--pids-limit", "20", "busybox", "sh", "-c",
                  "while true; do sleep 1000 & wait; done")
    assert cgroup_file(daemon, "bombed", "pids", "pids.max") == "20"
    done = daemon.docker("exec", "bombed", "sh", "-c", "for i in $(seq 60); do sleep 30 & done; wait", check=False,
                         timeout=60)
    assert "can't fork" in done.stderr or "Resource temporarily unavailable" in done.stderr, done.stderr
    assert 15 < int(cgroup_file(daemon, "bombed", "pids", "pids.current")) <= 20
    if V1:
        assert int(cgroup_file(daemon, "bombed", "pids", "pids.events").split()[-1]) > 0  # forks refused
    assert inspect(daemon, "bombed", "{{.State.Running}}") == "true"
    daemon.docker("update", "--pids-limit", "40", "bombed")  # room to exec again
    daemon.docker("exec", "bombed", "killall", "sleep")
    wait_for(lambda: int(cgroup_file(daemon, "bombed", "pids", "pids.current")) <= 2)
    assert daemon.docker("exec", "bombed", "echo", "alive").stdout == "alive\n"
    assert inspect(daemon, "bombed", "{{.State.Running}}") == "true"
    daemon.docker("rm", "-f", "bombed")


# -- each flag ------------------------------------------------------------------------------------

def test_each_resource_flag_reaches_the_cgroup_or_the_container(daemon):
    cpus = "1" if "1" in HOST.cpus or "-" in HOST.cpus else "0"
    done = daemon.docker("run", "-d", "--name", "limited", "--memory", "48m", "--memory-swap", "96m",
                         "--memory-reservation", "24m", "--cpus", "0.5", "--cpu-shares", "512", "--cpuset-cpus", cpus,
                         "--pids-limit", "33", "--ulimit", "nofile=1024:2048", "--ulimit", "nproc=500",
                         "--shm-size", "16m", "busybox", "sleep", "1000")
    assert "WARNING" not in done.stderr
    assert memory_limit(daemon, "limited") == 48 * MiB
    if V1:
        assert cgroup_file(daemon, "limited", "memory", "memory.memsw.limit_in_bytes") == str(96 * MiB)
        assert cgroup_file(daemon, "limited", "memory", "memory.soft_limit_in_bytes") == str(24 * MiB)
        assert cgroup_file(daemon, "limited", "cpu", "cpu.cfs_quota_us") == "50000"
        assert cgroup_file(daemon, "limited", "cpu", "cpu.cfs_period_us") == "100000"
        assert cgroup_file(daemon, "limited", "cpu", "cpu.shares") == "512"
    else:
        assert cgroup_file(daemon, "limited", "memory", "memory.swap.max") == str(48 * MiB)
        assert cgroup_file(daemon, "limited", "memory", "memory.low") == str(24 * MiB)
        assert cgroup_file(daemon, "limited", "cpu", "cpu.max") == "50000 100000"
    assert cgroup_file(daemon, "limited", "cpuset", "cpuset.cpus") == cpus
    assert cgroup_file(daemon, "limited", "pids", "pids.max") == "33"
    inside = daemon.docker("exec", "limited", "sh", "-c", "ulimit -n; ulimit -Hn; ulimit -u; df -k /dev/shm | "
                           "tail -1").stdout.split("\n")
    assert inside[:3] == ["1024", "2048", "500"]
    assert inside[3].split()[1] == "16384", inside[3]
    assert inspect(daemon, "limited", "{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}} "
                   "{{.HostConfig.MemoryReservation}} {{.HostConfig.NanoCpus}} {{.HostConfig.CpuShares}} "
                   "{{.HostConfig.CpusetCpus}} {{.HostConfig.PidsLimit}} {{.HostConfig.ShmSize}}") == \
        f"{48 * MiB} {96 * MiB} {24 * MiB} 500000000 512 {cpus} 33 {16 * MiB}"
    daemon.docker("rm", "-f", "limited")


def test_blkio_weight_is_applied_or_discarded_with_dockers_warning(daemon):
    done = daemon.docker("run", "-d", "--name", "weighted", "--blkio-weight", "300", "busybox", "sleep", "1000")
    if HOST.blkio_weight:
        assert "WARNING" not in done.stderr
        assert inspect(daemon, "weighted", "{{.HostConfig.BlkioWeight}}") == "300"
    else:  # no I/O scheduler that weighs (none, mq-deadline): Docker discards it and says so
        assert "WARNING: Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight " \
               "discarded." in done.stderr
        assert inspect(daemon, "weighted", "{{.HostConfig.BlkioWeight}}") == "0"
    daemon.docker("rm", "-f", "weighted")


@pytest.mark.parametrize("flags, message", [
    (["--memory", "1m"], "Minimum memory limit allowed is 6MB"),
    (["--memory", "64m", "--memory-swap", "32m"], "Minimum memoryswap limit should be larger than memory limit"),
    (["--memory-swap", "64m"], "You should always set the Memory limit when using Memoryswap limit, see usage"),
    (["--memory", "32m", "--memory-reservation", "64m"], "Minimum memory limit can not be less than memory "
                                                          "reservation limit"),
    (["--cpus", "0.5", "--cpu-period", "50000"], "Conflicting options: Nano CPUs and CPU Period cannot both be set"),
    (["--cpus", "0.5", "--cpu-quota", "50000"], "Conflicting options: Nano CPUs and CPU Quota cannot both be set"),
    (["--cpus", "1000"], "Range of CPUs is from 0.01 to"),
    (["--cpu-period", "100"], "CPU cfs period can not be less than 1ms"),
    (["--cpuset-cpus", "63"], "Requested CPUs are not available - requested 63, available: "),
    (["--cpuset-cpus", "x"], "Invalid value x for cpuset cpus"),
])
def test_bad_values_are_refused_as_docker_refuses_them(daemon, flags, message):
    done = daemon.docker("run", "--rm", *flags, "busybox", "true", check=False)
    assert done.returncode == 125 and message in done.stderr, done.stderr
    if message.startswith("Requested CPUs"):
        assert f"available: {HOST.cpus}\n" in done.stderr


# -- update ---------------------------------------------------------------------------------------

def test_update_memory_of_a_running_container(daemon):
    daemon.docker("run", "-d", "--name", "grow", "--memory", "32m", "busybox", "sleep", "1000")
    assert memory_limit(daemon, "grow") == 32 * MiB
    since = time.time()
    done = daemon.docker("update", "--memory", "64m", "--memory-swap", "128m", "grow")
    assert done.stdout == "grow\n"
    assert memory_limit(daemon, "grow") == 64 * MiB
    if V1:
        assert cgroup_file(daemon, "grow", "memory", "memory.memsw.limit_in_bytes") == str(128 * MiB)
    assert inspect(daemon, "grow", "{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}}") == f"{64 * MiB} {128 * MiB}"
    assert "update" in events(daemon, since, "grow")
    # Lower again, with the memory+swap limit kept.
    daemon.docker("update", "--memory", "40m", "grow")
    assert memory_limit(daemon, "grow") == 40 * MiB
    # A restart makes a new cgroup from the stored HostConfig.
    daemon.docker("restart", "-t", "0", "grow")
    assert memory_limit(daemon, "grow") == 40 * MiB
    daemon.docker("rm", "-f", "grow")


def test_update_cpus_pids_and_reservation(daemon):
    daemon.docker("run", "-d", "--name", "tune", "--pids-limit", "50", "busybox", "sleep", "1000")
    daemon.docker("update", "--cpus", "0.5", "--pids-limit", "15", "--cpu-shares", "300", "tune")
    if V1:
        assert cgroup_file(daemon, "tune", "cpu", "cpu.cfs_quota_us") == "50000"
        assert cgroup_file(daemon, "tune", "cpu", "cpu.shares") == "300"
    else:
        assert cgroup_file(daemon, "tune", "cpu", "cpu.max") == "50000 100000"
    assert cgroup_file(daemon, "tune", "pids", "pids.max") == "15"
    assert inspect(daemon, "tune", "{{.HostConfig.NanoCpus}} {{.HostConfig.PidsLimit}} {{.HostConfig.CpuShares}}") \
        == "500000000 15 300"
    daemon.docker("update", "--pids-limit", "-1", "tune")
    assert cgroup_file(daemon, "tune", "pids", "pids.max") == "max"
    assert inspect(daemon, "tune", "{{.HostConfig.PidsLimit}}") == "0"
    daemon.docker("rm", "-f", "tune")


def test_update_restart_policy_is_stored_and_obeyed(daemon):
    daemon.docker("run", "-d", "--name", "phoenix", "busybox", "sleep", "1000")
    daemon.docker("update", "--restart", "always", "phoenix")
    assert inspect(daemon, "phoenix", "{{.HostConfig.RestartPolicy.Name}}") == "always"
    pid = int(inspect(daemon, "phoenix", "{{.State.Pid}}"))
    os.kill(pid, 9)  # not through the daemon: a crash, which "always" restarts
    wait_for(lambda: inspect(daemon, "phoenix", "{{.RestartCount}} {{.State.Running}}") == "1 true", 15)
    daemon.docker("update", "--restart", "on-failure:3", "phoenix")
    assert json.loads(inspect(daemon, "phoenix", "{{json .HostConfig.RestartPolicy}}")) == \
        {"MaximumRetryCount": 3, "Name": "on-failure"}
    daemon.docker("rm", "-f", "phoenix")


def test_update_of_a_stopped_or_paused_container(daemon):
    daemon.docker("create", "--name", "later", "--memory", "32m", "busybox", "sleep", "1000")
    daemon.docker("update", "--memory", "48m", "later")
    daemon.docker("start", "later")
    assert memory_limit(daemon, "later") == 48 * MiB
    daemon.docker("pause", "later")
    daemon.docker("update", "--pids-limit", "9", "later")
    assert cgroup_file(daemon, "later", "pids", "pids.max") == "9"
    daemon.docker("unpause", "later")
    daemon.docker("rm", "-f", "later")


def test_update_is_refused_as_docker_refuses_it(daemon):
    daemon.docker("run", "-d", "--name", "nolimit", "busybox", "sleep", "1000")
    cid = inspect(daemon, "nolimit", "{{.Id}}")
    done = daemon.docker("update", "--memory", "64m", "nolimit", check=False)
    assert done.returncode == 1 and done.stderr == (
        f"Error response from daemon: Cannot update container {cid}: Memory limit should be smaller than already "
        "set memoryswap limit, update the memoryswap at the same time\n")
    daemon.docker("update", "--memory", "64m", "--memory-swap", "-1", "nolimit")
    assert memory_limit(daemon, "nolimit") == 64 * MiB
    daemon.docker("update", "--cpu-quota", "20000", "nolimit")
    done = daemon.docker("update", "--cpus", "1", "nolimit", check=False)
    assert "Conflicting options: Nano CPUs cannot be updated as CPU Quota has already been set" in done.stderr
    done = daemon.docker("update", "--cpus", "1000", "nolimit", check=False)
    assert done.returncode == 1 and "Range of CPUs is from 0.01 to" in done.stderr
    done = daemon.docker("update", "--restart", "sometimes", "nolimit", check=False)
    assert "invalid restart policy: unknown policy 'sometimes'" in done.stderr
    done = daemon.docker("update", "nolimit", check=False)
    assert done.returncode == 1 and "you must provide one or more flags" in done.stderr
    daemon.docker("run", "-d", "--rm", "--name", "temporary", "busybox", "sleep", "1000")
    done = daemon.docker("update", "--restart", "always", "temporary", check=False)
    assert "Restart policy cannot be updated because AutoRemove is enabled for the container" in done.stderr
    done = daemon.docker("update", "--memory", "64m", "--memory-swap", "128m", "nosuchcontainer", check=False)
    assert done.returncode == 1 and "No such container: nosuchcontainer" in done.stderr
    daemon.docker("rm", "-f", "nolimit", "temporary")


def test_update_through_docker_py(daemon):
    client = daemon.client()
    try:
        container = client.containers.run("busybox", ["sleep", "1000"], mem_limit="32m", pids_limit=25,
                                          detach=True)
        assert container.update(mem_limit="64m", memswap_limit="128m", cpu_shares=300,
                                restart_policy={"Name": "unless-stopped"}) == {"Warnings": []}
        container.reload()
        assert container.attrs["HostConfig"]["Memory"] == 64 * MiB
        assert container.attrs["HostConfig"]["CpuShares"] == 300
        assert container.attrs["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
        stats = container.stats(stream=False)
        assert stats["memory_stats"]["limit"] == 64 * MiB
        assert stats["pids_stats"]["current"] >= 1 and stats["pids_stats"]["limit"] == 25
        container.remove(force=True)
    finally:
        client.close()


def test_stats_no_stream_shows_the_limits(daemon):
    daemon.docker("run", "-d", "--name", "measured", "--memory", "48m", "busybox", "sleep", "1000")
    out = daemon.docker("stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}} {{.PIDs}}", "measured").stdout
    name, usage, _, limit, pids = out.split()
    assert name == "measured" and limit == "48MiB" and int(pids) >= 1
    assert usage.endswith(("KiB", "MiB")) and float(usage.rstrip("KiMB")) > 0
    daemon.docker("update", "--memory", "64m", "measured")
    out = daemon.docker("stats", "--no-stream", "--format", "{{.MemUsage}}", "measured").stdout
    assert out.split()[-1] == "64MiB"
    daemon.docker("rm", "-f", "measured")


def test_update_with_runc_as_the_runtime(daemon):
    if not shutil.which("runc"):
        pytest.skip("runc is not installed")
    daemon.docker("run", "-d", "--name", "viarunc", "--runtime", "runc", "--memory", "32m", "--pids-limit", "20",
                  "busybox", "sleep", "1000")
    daemon.docker("update", "--memory", "64m", "--memory-swap", "128m", "--pids-limit", "12", "--cpus", "0.25",
                  "viarunc")
    assert memory_limit(daemon, "viarunc") == 64 * MiB
    assert cgroup_file(daemon, "viarunc", "pids", "pids.max") == "12"
    if V1:
        assert cgroup_file(daemon, "viarunc", "cpu", "cpu.cfs_quota_us") == "25000"
    done = daemon.docker("update", "--memory-swap", "40m", "viarunc", check=False)  # below the memory: runc refuses
    assert done.returncode == 1 and "Cannot update container" in done.stderr
    assert inspect(daemon, "viarunc", "{{.HostConfig.MemorySwap}}") == str(128 * MiB), "put back"
    daemon.docker("rm", "-f", "viarunc")
    since = time.time()
    done = daemon.docker("run", "--name", "runcoom", "--runtime", "runc", "--memory", "32m", "busybox", "tail",
                         "/dev/zero", check=False)
    assert done.returncode == 137
    assert inspect(daemon, "runcoom", "{{.State.OOMKilled}}") == "true"
    actions = events(daemon, since, "runcoom")
    assert "oom" in actions and actions.index("oom") < actions.index("die"), actions
    daemon.docker("rm", "runcoom")


def test_the_orlop_cli_runs_with_limits_and_updates(daemon):
    orlop = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), ".venv", "bin",
                         "orlop")
    env = {**os.environ, "DOCKER_HOST": daemon.host}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([orlop, *args], capture_output=True, text=True, env=env, timeout=60)

    done = run("run", "-d", "--name", "viaorlop", "--memory", "32m", "--pids-limit", "20", "--blkio-weight", "300",
               "busybox", "sleep", "1000")
    assert done.returncode == 0, done.stderr
    assert ("WARNING: Your kernel does not support Block I/O weight" in done.stderr) != HOST.blkio_weight
    done = run("update", "--memory", "64m", "--memory-swap", "128m", "--cpus", "0.5", "viaorlop")
    assert done.returncode == 0 and done.stdout == "viaorlop\n", done.stderr
    assert memory_limit(daemon, "viaorlop") == 64 * MiB
    done = run("container", "update", "--pids-limit", "11", "--restart", "always", "viaorlop")
    assert done.returncode == 0, done.stderr
    assert cgroup_file(daemon, "viaorlop", "pids", "pids.max") == "11"
    assert inspect(daemon, "viaorlop", "{{.HostConfig.RestartPolicy.Name}} {{.HostConfig.NanoCpus}}") == \
        "always 500000000"
    done = run("update", "--memory", "200m", "viaorlop")
    assert done.returncode == 1 and "Memory limit should be smaller than already set memoryswap limit" in done.stderr
    done = run("update", "viaorlop")
    assert done.returncode == 1 and done.stderr == "you must provide one or more flags when using this command\n"
    daemon.docker("rm", "-f", "viaorlop")
