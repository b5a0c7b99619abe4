"""The `orlop` CLI against an orlopd of its own: docker's commands, outputs and exit
statuses (run, exec, ps, logs, inspect, images, save/load…), -it under a pty, and the
create request compared byte for byte with the real docker CLI's."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import re
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid

import pytest
from busybox_bundle import make_rootfs
from conftest import needs_root
from image_archive import make_docker_archive

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ORLOP = os.path.join(REPO, ".venv", "bin", "orlop")
ORLOPD = os.path.join(REPO, ".venv", "bin", "orlopd")
DOCKER = "/usr/local/bin/docker"

pytestmark = [needs_root]


class Daemon:
    """orlopd with a private data root, exec root and socket; `orlop()` runs the CLI on it."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.data_root = os.path.join(base, "data")
        suffix = uuid.uuid4().hex[:8]
        self.exec_root = f"/run/orlop-cli-{suffix}"  # shim sockets need short paths
        # A network namespace of its own: the daemon's bridge and nftables table stay off the host's.
        self.netns = f"orlop-cli-{suffix}"
        self.host = "unix://" + os.path.join(self.exec_root, "orlopd.sock")
        self.log_path = os.path.join(base, "orlopd.log")
        self.env = {**os.environ, "ORLOP_HOST": self.host, "DOCKER_CONFIG": os.path.join(base, "docker-config")}
        self.env.pop("DOCKER_HOST", None)
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        os.makedirs(self.exec_root, exist_ok=True)
        subprocess.run(["ip", "netns", "add", self.netns], check=True)
        subprocess.run(["ip", "-n", self.netns, "link", "set", "lo", "up"], check=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(["nsenter", f"--net=/run/netns/{self.netns}", "--", ORLOPD, "--data-root", self.data_root, "--exec-root", self.exec_root,
                                          "--host", self.host, "--config-file", "/nonexistent"],
                                         stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"orlopd exited {self.proc.returncode}:\n{self.log()}")
            if self.orlop("version", check=False).returncode == 0:
                return
            time.sleep(0.05)
        raise AssertionError(f"orlopd did not answer:\n{self.log()}")

    def log(self) -> str:
        with contextlib.suppress(OSError), open(self.log_path, errors="replace") as f:
            return f.read()[-4000:]
        return ""

    def orlop(self, *args: str, check: bool = True, input: str | None = None, timeout: float = 60,
              ) -> subprocess.CompletedProcess:
        # subprocess's timeout kills with SIGKILL: an attached client passes SIGTERM to the container.
        done = subprocess.run([ORLOP, *args], capture_output=True, text=True, input=input, timeout=timeout,
                              env=self.env, stdin=None if input is not None else subprocess.DEVNULL)
        if check and done.returncode != 0:
            raise AssertionError(f"orlop {' '.join(args)} exited {done.returncode}:\nstdout: {done.stdout}\n"
                                 f"stderr: {done.stderr}\ndaemon log:\n{self.log()}")
        return done

    def cleanup(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            ids = self.orlop("ps", "-aq", "--no-trunc", check=False).stdout.split()
            if ids:
                self.orlop("rm", "-f", *ids, check=False)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pid in _pids_mentioning(self.exec_root):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        runtime_root = os.path.join(self.exec_root, "runtime", "orlop-runtime")
        if os.path.isdir(runtime_root):
            for cid in os.listdir(runtime_root):
                subprocess.run([os.path.join(REPO, ".venv", "bin", "orlop-runtime"), "--root", runtime_root,
                                "delete", "--force", cid], capture_output=True)
        for mountpoint in reversed(_mounts_under(self.data_root)):
            subprocess.run(["umount", "-l", mountpoint], capture_output=True)
        shutil.rmtree(self.exec_root, ignore_errors=True)
        subprocess.run(["ip", "netns", "del", self.netns], capture_output=True)


def _pids_mentioning(text: str) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            with contextlib.suppress(OSError), open(f"/proc/{entry}/cmdline", "rb") as f:
                if text.encode() in f.read():
                    pids.append(int(entry))
    return pids


def _mounts_under(root: str) -> list[str]:
    root = os.path.realpath(root)
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return [p for p in points if p == root or p.startswith(root + "/")]


@pytest.fixture(scope="module")
def daemon():
    base = tempfile.mkdtemp(prefix="orlop-cli-test-")
    d = Daemon(base)
    try:
        d.start()
        rootfs = os.path.join(base, "rootfs")
        make_rootfs(rootfs)
        archive = make_docker_archive(rootfs, os.path.join(base, "busybox.tar"), "busybox:latest")
        assert d.orlop("load", "-i", archive).stdout == "Loaded image: busybox:latest\n"
        yield d
    finally:
        d.cleanup()
        shutil.rmtree(base, ignore_errors=True)


def wait_for(predicate, timeout: float = 10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


# -- run ------------------------------------------------------------------------------------------
def test_hello_world(daemon):
    done = daemon.orlop("run", "--rm", "busybox", "echo", "hello", "world")
    assert (done.stdout, done.stderr) == ("hello world\n", "")
    assert daemon.orlop("ps", "-aq").stdout == ""  # --rm removed it


def test_run_exits_with_the_containers_status_and_keeps_stdout_and_stderr_apart(daemon):
    done = daemon.orlop("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3", check=False)
    assert (done.returncode, done.stdout, done.stderr) == (3, "out\n", "err\n")


def test_a_missing_command_is_127_and_a_directory_126(daemon):
    done = daemon.orlop("run", "--rm", "busybox", "no-such-command", check=False)
    assert done.returncode == 127
    assert done.stderr.startswith("orlop: Error response from daemon: ")
    assert "executable file not found" in done.stderr
    assert "Run 'orlop run --help' for more information" in done.stderr
    assert daemon.orlop("run", "--rm", "busybox", "/etc", check=False).returncode == 126
    assert daemon.orlop("ps", "-aq").stdout == ""


def test_an_image_that_cannot_be_found_or_pulled_is_125(daemon):
    done = daemon.orlop("run", "--rm", "127.0.0.1:1/no/such:1", "true", check=False)
    assert done.returncode == 125
    assert "Unable to find image '127.0.0.1:1/no/such:1' locally" in done.stderr
    never = daemon.orlop("run", "--rm", "--pull", "never", "no-such-image", check=False)
    assert never.returncode == 125 and "No such image" in never.stderr


def test_a_bad_flag_is_125_with_docker_usage(daemon):
    done = daemon.orlop("run", "--no-such-flag", "busybox", "true", check=False)
    assert done.returncode == 125
    assert done.stderr.startswith("unknown flag: --no-such-flag\n\nUsage:  orlop run [OPTIONS] IMAGE")
    assert daemon.orlop("run", "-m", "12x", "busybox", "true", check=False).returncode == 125
    assert daemon.orlop("run", "--rm", "--restart", "always", "busybox", "true", check=False).returncode == 125
    missing = daemon.orlop("rm", check=False)
    assert missing.returncode == 1 and "'orlop rm' requires at least 1 argument" in missing.stderr


def test_run_options_reach_the_process(daemon, tmp_path):
    env_file = tmp_path / "env"
    env_file.write_text("# a comment\nFROM_FILE=one two\n\nPASSED\nUNSET_IN_HOST\n")
    done = daemon.orlop(
        "run", "--rm", "-e", "A=1", "--env", "B=2", "--env-file", str(env_file), "-w", "/tmp", "-u", "1234:56",
        "--hostname", "boxhost", "busybox", "sh", "-c",
        'echo "$A $B $FROM_FILE $PASSED ${UNSET_IN_HOST-unset}"; pwd; id -u; id -g; hostname')
    # PASSED is taken from orlop's own environment, like docker's
    assert done.stdout.splitlines() == ["1 2 one two  unset", "/tmp", "1234", "56", "boxhost"]
    daemon.env["PASSED"] = "from-host"
    try:
        again = daemon.orlop("run", "--rm", "--env-file", str(env_file), "busybox", "sh", "-c", "echo $PASSED")
    finally:
        del daemon.env["PASSED"]
    assert again.stdout == "from-host\n"
    entry = daemon.orlop("run", "--rm", "--entrypoint", "echo", "busybox", "via", "entrypoint")
    assert entry.stdout == "via entrypoint\n"
    readonly = daemon.orlop("run", "--rm", "--read-only", "busybox", "touch", "/file", check=False)
    assert readonly.returncode == 1 and "Read-only file system" in readonly.stderr
    tmpfs = daemon.orlop("run", "--rm", "--read-only", "--tmpfs", "/scratch", "busybox", "touch", "/scratch/f")
    assert tmpfs.returncode == 0


def test_mount_flag(daemon, tmp_path):
    (tmp_path / "f").write_text("bound\n")
    done = daemon.orlop(
        "run", "--rm", "--mount", f"type=bind,source={tmp_path},target=/b,readonly", "--mount",
        "type=volume,src=cli-mount-vol,dst=/v", "--mount", "type=tmpfs,dst=/t,tmpfs-size=1m", "busybox", "sh", "-c",
        "cat /b/f; touch /b/x 2>/dev/null || echo ro; echo kept > /v/k; grep ' /t ' /proc/mounts | cut -d' ' -f3")
    assert done.stdout == "bound\nro\ntmpfs\n"
    assert daemon.orlop("run", "--rm", "-v", "cli-mount-vol:/v", "busybox", "cat", "/v/k").stdout == "kept\n"
    daemon.orlop("volume", "rm", "cli-mount-vol")
    assert "cli-mount-vol" not in daemon.orlop("volume", "ls", "-q").stdout.split()


def test_port_and_import(daemon, tmp_path):
    daemon.orlop("run", "-d", "--name", "ported", "-p", "18099:80", "-p", "127.0.0.1:18100:90/udp", "busybox",
                 "sh", "-c", "echo imported > /marker; sleep 300")
    try:
        assert daemon.orlop("port", "ported").stdout == "80/tcp -> 0.0.0.0:18099\n90/udp -> 127.0.0.1:18100\n"
        assert daemon.orlop("port", "ported", "80").stdout == "0.0.0.0:18099\n"
        missing = daemon.orlop("port", "ported", "81", check=False)
        assert missing.returncode == 1 and "No public port '81/tcp' published for ported" in missing.stderr
        archive = tmp_path / "rootfs.tar"
        daemon.orlop("export", "-o", str(archive), "ported")
        image_id = daemon.orlop("import", "-c", 'CMD ["cat", "/marker"]', "-m", "from a tar", str(archive),
                                "imported:1").stdout.strip()
        assert image_id.startswith("sha256:")
        assert daemon.orlop("run", "--rm", "imported:1").stdout == "imported\n"
        history = daemon.orlop("history", "--format", "{{.Comment}}", "imported:1").stdout
        assert "from a tar" in history
        piped = subprocess.run([ORLOP, "import", "-", "imported:2"], stdin=open(archive, "rb"), env=daemon.env,
                               capture_output=True, text=True, timeout=60)
        assert piped.returncode == 0 and piped.stdout.startswith("sha256:")
    finally:
        daemon.orlop("rm", "-f", "ported", check=False)
        daemon.orlop("rmi", "imported:1", "imported:2", check=False)


def test_volume_commands(daemon):
    assert daemon.orlop("volume", "create", "--label", "team=a", "cli-vol").stdout == "cli-vol\n"
    listing = daemon.orlop("volume", "ls").stdout.splitlines()
    assert listing[0].split() == ["DRIVER", "VOLUME", "NAME"] and ["local", "cli-vol"] in [line.split() for line in listing]
    assert daemon.orlop("volume", "inspect", "-f", "{{.Labels.team}} {{.Driver}}", "cli-vol").stdout == "a local\n"
    missing = daemon.orlop("volume", "inspect", "no-such-volume", check=False)
    assert missing.returncode == 1 and missing.stderr.startswith("Error response from daemon:")
    daemon.orlop("run", "--rm", "-v", "cli-vol:/v", "busybox", "true")
    anonymous = daemon.orlop("volume", "create").stdout.strip()
    pruned = daemon.orlop("volume", "prune", "-f").stdout
    assert pruned.startswith("Deleted Volumes:\n") and anonymous in pruned and "cli-vol" not in pruned
    assert daemon.orlop("volume", "rm", "cli-vol").stdout == "cli-vol\n"
    assert daemon.orlop("volume", "ls", "-q").stdout.split() == []


def test_network_commands_and_a_network_shared_by_name(daemon):
    nid = daemon.orlop("network", "create", "--subnet", "10.87.0.0/24", "--label", "x=y", "cli-net").stdout.strip()
    try:
        assert len(nid) == 64
        rows = [line.split() for line in daemon.orlop("network", "ls").stdout.splitlines()]
        assert rows[0] == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"] and [nid[:12], "cli-net", "bridge", "local"] in rows
        assert daemon.orlop("network", "inspect", "-f", "{{range .IPAM.Config}}{{.Subnet}}{{end}} {{.Labels.x}}",
                            "cli-net").stdout == "10.87.0.0/24 y\n"
        daemon.orlop("run", "-d", "--name", "cli-net-server", "--network", "cli-net", "busybox", "sleep", "100")
        ping = daemon.orlop("run", "--rm", "--network", "cli-net", "busybox", "ping", "-c", "1", "-W", "3",
                            "cli-net-server")
        assert "10.87.0." in ping.stdout and " 0% packet loss" in ping.stdout
        daemon.orlop("run", "-d", "--name", "cli-net-late", "busybox", "sleep", "100")
        daemon.orlop("network", "connect", "--alias", "late", "cli-net", "cli-net-late")
        addresses = daemon.orlop("exec", "cli-net-late", "ip", "-4", "-o", "addr").stdout
        assert "10.87.0." in addresses
        daemon.orlop("network", "disconnect", "cli-net", "cli-net-late")
        assert "10.87.0." not in daemon.orlop("exec", "cli-net-late", "ip", "-4", "-o", "addr").stdout
        busy = daemon.orlop("network", "rm", "cli-net", check=False)
        assert busy.returncode == 1 and "Error response from daemon:" in busy.stderr
    finally:
        daemon.orlop("rm", "-f", "cli-net-server", "cli-net-late", check=False)
    assert daemon.orlop("network", "rm", "cli-net").stdout == "cli-net\n"
    assert daemon.orlop("network", "rm", "-f", "cli-net").returncode == 0
    daemon.orlop("network", "create", "cli-net-unused")
    assert "cli-net-unused" in daemon.orlop("network", "prune", "-f").stdout


@pytest.mark.skipif(not os.path.exists(DOCKER), reason="no docker CLI")
@pytest.mark.parametrize("value", ["foo", "type=bind,src=/tmp", "type=volume,target=/x,tmpfs-size=1m",
                                   "type=bind,src=/a,dst=/b,bogus=1", "type=tmpfs,dst=/t,tmpfs-size=abc",
                                   'type=bind,"src=/a', 'type=bind,a"b', 'type=bind,"ab"c', 'x,"y'])
def test_bad_mount_flags_are_refused_as_docker_refuses_them(tmp_path, value):
    env = {**os.environ, "DOCKER_HOST": "unix:///nonexistent.sock", "ORLOP_HOST": "unix:///nonexistent.sock",
           "DOCKER_CONFIG": str(tmp_path)}
    done = [subprocess.run([cli, "run", "--mount", value, "busybox", "true"], capture_output=True, text=True,
                           env=env, timeout=30) for cli in (DOCKER, ORLOP)]
    assert done[1].returncode == done[0].returncode == 125
    assert done[1].stderr.splitlines()[0] == done[0].stderr.splitlines()[0]


def test_stdin_is_copied_and_closed_with_i(daemon):
    done = daemon.orlop("run", "-i", "--rm", "busybox", "sh", "-c", "cat; echo end", input="line1\nline2\n")
    assert done.stdout == "line1\nline2\nend\n"


def test_detached_container_ps_logs_stop_rm(daemon):
    cid = daemon.orlop("run", "-d", "--name", "web", "busybox", "sh", "-c",
                       "echo out1; echo err1 >&2; sleep 300").stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", cid)
    try:
        listed = daemon.orlop("ps").stdout.splitlines()
        assert re.match(r"CONTAINER ID\s{3}IMAGE\s+COMMAND\s+CREATED\s+STATUS\s+PORTS\s+NAMES$", listed[0])
        row = next(line for line in listed if line.startswith(cid[:12]))
        assert re.search(r'busybox\s+"sh -c \'echo out1; e…"\s+.* ago\s+Up .*\s+web$', row), row
        wait_for(lambda: daemon.orlop("logs", "web").stdout == "out1\n")
        logs = daemon.orlop("logs", "web")
        assert (logs.stdout, logs.stderr) == ("out1\n", "err1\n")
        stamped = daemon.orlop("logs", "-t", "--tail", "1", "web")
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z err1\n", stamped.stderr)
        assert daemon.orlop("stop", "-t", "1", "web").stdout == "web\n"
        status = daemon.orlop("ps", "-a", "--filter", "name=web", "--format", "{{.Status}}").stdout
        assert status.startswith("Exited (137) ")
        assert daemon.orlop("ps", "-q").stdout == ""
    finally:
        assert daemon.orlop("rm", "-f", "web").stdout == "web\n"
    gone = daemon.orlop("rm", "web", check=False)
    assert (gone.returncode, gone.stderr) == (1, "Error response from daemon: No such container: web\n")


def test_exec(daemon):
    daemon.orlop("run", "-d", "--name", "exec-target", "busybox", "sleep", "300")
    try:
        done = daemon.orlop("exec", "exec-target", "sh", "-c", "echo eout; echo eerr >&2; exit 4", check=False)
        assert (done.returncode, done.stdout, done.stderr) == (4, "eout\n", "eerr\n")
        options = daemon.orlop("exec", "-e", "X=y", "-w", "/tmp", "-u", "99", "exec-target", "sh", "-c",
                               "echo $X; pwd; id -u")
        assert options.stdout == "y\n/tmp\n99\n"
        assert daemon.orlop("exec", "-i", "exec-target", "cat", input="piped\n").stdout == "piped\n"
        assert daemon.orlop("exec", "exec-target", "no-such-command", check=False).returncode == 127
        assert daemon.orlop("exec", "-d", "exec-target", "touch", "/detached").stdout == ""
        wait_for(lambda: daemon.orlop("exec", "exec-target", "ls", "/detached", check=False).returncode == 0)
    finally:
        daemon.orlop("rm", "-f", "exec-target")


def test_inspect_format_and_json(daemon):
    daemon.orlop("run", "-d", "--name", "inspected", "-l", "tier=web", "busybox", "sleep", "300")
    try:
        pid = int(daemon.orlop("inspect", "-f", "{{.State.Pid}}", "inspected").stdout)
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            assert f.read() == b"sleep\x00300\x00"
        template = '{{.Name}} {{json .Config.Cmd}} {{.Config.Labels.tier}} {{upper .State.Status}}'
        assert daemon.orlop("inspect", "--format", template, "inspected").stdout == \
            '/inspected ["sleep","300"] web RUNNING\n'
        shown = json.loads(daemon.orlop("inspect", "inspected", "busybox").stdout)
        assert [shown[0]["Name"], shown[1]["RepoTags"]] == ["/inspected", ["busybox:latest"]]
        missing = daemon.orlop("inspect", "no-such-object", check=False)
        assert (missing.returncode, missing.stdout, missing.stderr) == (1, "[]\n", "Error: No such object: "
                                                                                   "no-such-object\n")
    finally:
        daemon.orlop("rm", "-f", "inspected")


def test_ps_format(daemon):
    cid = daemon.orlop("run", "-d", "--name", "formatted", "-l", "a=b", "busybox", "sleep", "300").stdout.strip()
    try:
        line = daemon.orlop("ps", "--filter", "name=formatted", "--format", "{{.ID}} {{.Names}} {{.Labels}}")
        assert line.stdout == f"{cid[:12]} formatted a=b\n"
        table = daemon.orlop("ps", "--filter", "name=formatted", "--format", "table {{.Names}}\\t{{.Image}}")
        assert table.stdout == "NAMES       IMAGE\nformatted   busybox\n"
        row = json.loads(daemon.orlop("ps", "--filter", "name=formatted", "--format", "json").stdout)
        assert (row["ID"], row["Names"], row["State"], row["Labels"]) == (cid[:12], "formatted", "running", "a=b")
        assert daemon.orlop("ps", "-q", "--no-trunc", "--filter", "name=formatted").stdout == cid + "\n"
        assert daemon.orlop("ps", "--format", "{{.Nope}}", check=False).returncode != 0
    finally:
        daemon.orlop("rm", "-f", "formatted")


def test_run_it_under_script(daemon):
    env = {**daemon.env, "TERM": "xterm"}
    command = f"{ORLOP} run -it --rm busybox sh -c 'echo in-tty; exit 2'"
    done = subprocess.run(["script", "-eqc", command, "/dev/null"], capture_output=True, timeout=60, env=env,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 2
    assert b"in-tty\r\n" in done.stdout


def _pty_session(argv: list[str], env: dict, steps: list, timeout: float = 30) -> tuple[bytes, int]:
    """Run argv on a 30x100 pty; steps: bytes to type, or seconds to wait (reading meanwhile)."""
    pid, fd = pty.fork()
    if pid == 0:
        import fcntl
        import struct
        import termios

        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
        os.execve(argv[0], argv, env)
    output = b""
    deadline = time.monotonic() + timeout
    steps = list(steps)
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    break
                if not data:
                    break
                output += data
            elif steps:
                step = steps.pop(0)
                if isinstance(step, bytes):
                    os.write(fd, step)
                else:
                    time.sleep(step)
    finally:
        with contextlib.suppress(ProcessLookupError):
            if time.monotonic() >= deadline:
                os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    return output, os.waitstatus_to_exitcode(status)


def test_interactive_tty_gets_the_terminal_size_and_detaches_on_ctrl_p_ctrl_q(daemon):
    output, status = _pty_session([ORLOP, "run", "-it", "--rm", "busybox", "sh"], daemon.env,
                                  [0.5, b"stty size; echo $((6*7))\r", 0.5, b"exit 5\r"])
    assert status == 5
    assert b"30 100\r\n42\r\n" in output
    output, status = _pty_session([ORLOP, "run", "-it", "--name", "detached", "busybox", "sh"], daemon.env,
                                  [0.5, b"echo before\r", 0.5, b"\x10\x11"])
    try:
        assert status == 0 and b"before\r\n" in output
        assert daemon.orlop("ps", "--filter", "name=detached", "--format", "{{.State}}").stdout == "running\n"
    finally:
        daemon.orlop("rm", "-f", "detached")


def test_images_tag_rmi_save_load(daemon, tmp_path):
    table = daemon.orlop("images").stdout.splitlines()
    assert re.match(r"REPOSITORY\s+TAG\s+IMAGE ID\s+CREATED\s+SIZE$", table[0])
    assert re.match(r"busybox\s+latest\s+[0-9a-f]{12}\s+.* ago\s+[\d.]+[kM]B$", table[1])
    image_id = daemon.orlop("images", "-q", "busybox").stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{12}", image_id)
    daemon.orlop("tag", "busybox", "example.com/team/tool:1.0")
    listed = daemon.orlop("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}").stdout.splitlines()
    assert f"example.com/team/tool:1.0 {image_id}" in listed
    archive = tmp_path / "tool.tar"
    daemon.orlop("save", "-o", str(archive), "example.com/team/tool:1.0")
    assert archive.stat().st_size > 0
    assert daemon.orlop("rmi", "example.com/team/tool:1.0").stdout == "Untagged: example.com/team/tool:1.0\n"
    assert daemon.orlop("images", "-q", "example.com/team/tool").stdout == ""
    assert daemon.orlop("load", "-i", str(archive)).stdout == "Loaded image: example.com/team/tool:1.0\n"
    assert daemon.orlop("run", "--rm", "example.com/team/tool:1.0", "echo", "loaded").stdout == "loaded\n"
    daemon.orlop("rmi", "example.com/team/tool:1.0")
    with open(archive, "rb") as f:
        loaded = subprocess.run([ORLOP, "load"], stdin=f, capture_output=True, text=True, env=daemon.env,
                                timeout=60)
    assert loaded.stdout == "Loaded image: example.com/team/tool:1.0\n"
    daemon.orlop("rmi", "example.com/team/tool:1.0")
    missing = daemon.orlop("rmi", "no-such-image", check=False)
    assert missing.returncode == 1 and missing.stderr.startswith("Error response from daemon: ")


def test_lifecycle_commands(daemon):
    daemon.orlop("create", "--name", "life", "busybox", "sh", "-c", "echo started; exit 7")
    try:
        attached = daemon.orlop("start", "-a", "life", check=False)
        assert (attached.returncode, attached.stdout) == (7, "started\n")
        assert daemon.orlop("wait", "life").stdout == "7\n"
        assert daemon.orlop("rename", "life", "life2").stdout == ""
        assert daemon.orlop("ps", "-a", "--filter", "name=life2", "--format", "{{.Names}}").stdout == "life2\n"
    finally:
        daemon.orlop("rm", "-f", "life2", check=False)
    daemon.orlop("run", "-d", "--name", "paused", "busybox", "sleep", "300")
    try:
        assert daemon.orlop("pause", "paused").stdout == "paused\n"
        assert daemon.orlop("ps", "--filter", "name=paused", "--format", "{{.Status}}").stdout.endswith(
            "(Paused)\n")
        daemon.orlop("unpause", "paused")
        top = daemon.orlop("top", "paused").stdout.splitlines()
        assert top[0].split()[:3] == ["UID", "PID", "PPID"] and "sleep 300" in top[1]
        assert daemon.orlop("kill", "-s", "KILL", "paused").stdout == "paused\n"
        assert daemon.orlop("wait", "paused").stdout == "137\n"
    finally:
        daemon.orlop("rm", "-f", "paused")


def test_version_and_info(daemon):
    version = daemon.orlop("version", "--format", "{{.Server.ApiVersion}}").stdout
    assert re.fullmatch(r"1\.\d+\n", version)
    assert daemon.orlop("info", "--format", "{{.OSType}}").stdout == "linux\n"
    assert "Server Version:" in daemon.orlop("info").stdout


def test_no_daemon_is_a_clear_error(tmp_path):
    env = {**os.environ, "ORLOP_HOST": f"unix://{tmp_path}/none.sock"}
    done = subprocess.run([ORLOP, "ps"], capture_output=True, text=True, env=env, timeout=30)
    assert done.returncode == 1
    assert done.stderr.startswith(f"Cannot connect to the orlop daemon at unix://{tmp_path}/none.sock.")
    run = subprocess.run([ORLOP, "run", "busybox"], capture_output=True, text=True, env=env, timeout=30)
    assert run.returncode == 125


# -- the create request, against the docker CLI's ----------------------------------------------------
class _RecordingServer:
    """Answers like a daemon just enough for a client to send its first real request, which
    it records (method, path and body) and refuses."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.requests: list[tuple[bytes, bytes]] = []
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.bind(path)
        self.sock.listen(8)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn) -> None:
        buffer = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffer += data
                head, _, rest = buffer.partition(b"\r\n\r\n")
                length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")[1:]
                               if line.lower().startswith(b"content-length:")), 0)
                while len(rest) < length:
                    rest += conn.recv(65536)
                body, buffer = rest[:length], rest[length:]
                request_line = head.split(b"\r\n")[0]
                if b"/_ping" in request_line:
                    conn.sendall(b"HTTP/1.1 200 OK\r\nApi-Version: 1.45\r\nOstype: linux\r\nContent-Length: 0\r\n\r\n")
                    continue
                method, target, _ = request_line.split(b" ")
                if method == b"GET" and re.fullmatch(rb"/v[\d.]+/containers/[^/]+/json", target):
                    record = (b'{"Id":"%s","Config":{"Tty":false,"OpenStdin":true},"State":{"Running":true},'
                              b'"HostConfig":{}}' % (b"a" * 64))
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                                 % (len(record), record))
                    continue
                self.requests.append((method + b" " + re.sub(rb"^/v1\.\d+", b"", target), body))
                message = b'{"message":"recorded"}'
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(message), message))

    def close(self) -> None:
        self.sock.close()


@pytest.mark.skipif(not os.path.exists(DOCKER), reason="no docker CLI")
@pytest.mark.parametrize("args", [
    ["run", "--rm", "busybox", "sh", "-c", "echo a && echo <b>"],
    ["run", "-d", "--name", "n1", "-e", "A=1", "-e", "UNSET_VARIABLE", "-w", "/tmp", "-u", "1000:100",
     "--entrypoint", "/bin/sh", "-h", "host1", "-l", "x=y", "-l", "a=b", "--restart", "on-failure:3", "--read-only",
     "--tmpfs", "/run:size=1m", "--cap-add", "net_admin", "--cap-drop", "ALL", "--privileged", "--security-opt",
     "no-new-privileges", "-m", "64m", "--cpus", "1.5", "--pids-limit", "100", "--ulimit", "nofile=10:20",
     "--stop-signal", "SIGINT", "--stop-timeout", "5", "--runtime", "runc", "-v", "/tmp:/data:ro", "-v", "/anon",
     "--network", "host", "--init", "busybox", "true"],
    ["run", "-p", "8080:80", "-p", "127.0.0.1:9000:90/udp", "--expose", "7000", "--add-host", "a:1.2.3.4",
     "--dns", "8.8.8.8", "--shm-size", "1g", "--sysctl", "net.ipv4.ip_forward=1", "--log-opt", "max-size=1m",
     "--memory-swap", "-1", "--oom-score-adj", "10", "busybox"],
    ["run", "-i", "--entrypoint", "", "busybox", "cat"],
    ["run", "--mount", "type=bind,src=/tmp,dst=/data,readonly,bind-propagation=rslave", "--mount",
     "type=volume,source=v1,target=/v,volume-nocopy,volume-opt=type=tmpfs,volume-label=b=2,volume-label=a=1",
     "--mount", "type=tmpfs,dst=/t,tmpfs-size=1m,tmpfs-mode=1770", "--mount", "target=/anon,ro=false", "busybox"],
    ["run", "-a", "stdout", "--network", "mynet", "--network-alias", "web", "busybox", "true"],
    ["run", "--network", "mynet", "--ip", "10.1.0.9", "--mac-address", "02:42:0a:01:00:09", "--link", "db:d",
     "--device-cgroup-rule", "c 1:3 mr", "busybox"],
    ["run", "--mac-address", "02:42:0a:01:00:09", "--link", "db", "busybox"],
    ["import", "-c", "ENV A=1", "-m", "msg", "http://example.invalid/rootfs.tar", "myimg:1"],
    ["create", "-i", "--name", "c1", "busybox"],
    ["create", "--health-cmd", "wget -q localhost || exit 1", "--health-interval", "1m30s", "--health-timeout",
     "1.5s", "--health-retries", "5", "--health-start-period", "300ms", "--health-start-interval", "2s", "busybox"],
    ["create", "--health-interval", "10s", "busybox"],
    ["create", "--no-healthcheck", "busybox"],
    ["exec", "-e", "A=1", "-w", "/w", "-u", "u", "--privileged", "c1", "ls", "-l"],
    ["exec", "-t", "-d", "c1", "ls"],
    ["ps", "-a", "--filter", "status=exited", "-n", "3"],
    ["logs", "-f", "--tail", "2", "-t", "c1"],
    ["rm", "-fv", "c1"],
    ["tag", "busybox", "foo/bar:1"],
    ["pull", "localhost:5000/x/y:2"],
    ["network", "create", "--ipv6", "--subnet", "fd00:1::/64", "--gateway", "fd00:1::1", "net6"],
    ["network", "create", "--ipv4=false", "--ipv6", "--internal", "--label", "a=b", "-o", "x=y", "net6"],
    ["network", "create", "--subnet", "10.1.0.0/24", "--ip-range", "10.1.0.0/25", "--gateway", "10.1.0.254", "n4"],
])
def test_requests_are_the_docker_clis(tmp_path, args):
    server = _RecordingServer(str(tmp_path / "recording.sock"))
    env = {**os.environ, "DOCKER_HOST": f"unix://{server.path}", "ORLOP_HOST": f"unix://{server.path}",
           "DOCKER_CONFIG": str(tmp_path / "config")}
    env.pop("UNSET_VARIABLE", None)
    try:
        for _ in range(3):  # on a loaded machine a client's first attempt can differ (e.g. a ping timing out)
            recorded = []
            for client in (DOCKER, ORLOP):
                server.requests.clear()
                subprocess.run([client, *args], capture_output=True, env=env, timeout=30, stdin=subprocess.DEVNULL)
                recorded.append(server.requests[0] if server.requests else None)
            if recorded[0] is not None and recorded[1] == recorded[0]:
                break
    finally:
        server.close()
    assert recorded[0] is not None, "docker sent nothing to record"
    assert recorded[1] == recorded[0]
