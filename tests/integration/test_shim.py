"""orlop-shim with orlop-runtime and runc, started as a process of its own and forked by
its zygote (as orlopd starts it): it creates the container, outlives its starter, keeps
the output in the json-file log and for attached clients, feeds stdin, runs execs, records
the exit (and an OOM kill) in exit.json. The zygote: shims share its memory, hold none of
its descriptors and outlive it; it is started again when it is gone or stale."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest
from busybox_bundle import make_bundle

from orlop.containers import shim_client
from orlop.shim import protocol, server, zygote

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHIM = os.path.join(REPO, ".venv", "bin", "orlop-shim")
RUNTIMES = {"orlop-runtime": os.path.join(REPO, ".venv", "bin", "orlop-runtime"), "runc": shutil.which("runc")}


class ShimUnderTest:
    """A shim started as `orlop-shim OPTIONS` (zygote None) or by the zygote on that socket."""

    def __init__(self, base: str, bundle: str, runtime: str, cid: str, zygote_socket: str | None = None,
                 **flags) -> None:
        self.dir = tempfile.mkdtemp(prefix="sh", dir="/run")  # socket paths stay short
        self.root = os.path.join(self.dir, "rt")
        self.cid = cid
        self.runtime = runtime
        self.log = os.path.join(base, "ctr-json.log")
        argv = ["--id", cid, "--bundle", bundle, "--state-dir", self.dir, "--runtime", runtime,
                "--runtime-root", self.root, "--log-path", self.log]
        for flag, value in flags.items():
            argv += [f"--{flag.replace('_', '-')}"] + ([] if value is True else [str(value)])
        if zygote_socket is None:
            done = subprocess.run([SHIM, *argv], capture_output=True, text=True, timeout=30)
            self.answer = json.loads(done.stdout)
            self.returncode = done.returncode
        else:
            self.answer = asyncio.run(asyncio.wait_for(shim_client._spawn_forked(zygote_socket, argv), 30))
            assert self.answer is not None, "no zygote could be had"
            self.returncode = 0 if "pid" in self.answer else 1

    def request(self, req: dict) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(os.path.join(self.dir, protocol.SOCKET))
        sock.sendall(json.dumps(req).encode() + b"\n")
        return sock

    def call(self, req: dict) -> dict:
        with self.request(req) as sock:
            return json.loads(_read_line(sock))

    def start(self) -> None:
        subprocess.run([self.runtime, "--root", self.root, "start", self.cid], check=True)

    def log_entries(self) -> list[dict]:
        with open(self.log) as f:
            return [json.loads(line) for line in f]

    def cleanup(self) -> None:
        subprocess.run([self.runtime, "--root", self.root, "delete", "--force", self.cid], capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)


def _read_line(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(1)
        if not chunk:
            break
        data += chunk
    return data


def read_frames(sock: socket.socket) -> tuple[bytes, bytes, dict | None]:
    """stdout, stderr and the exit record of an attach stream, until the shim closes it."""
    out, err, exit_ = b"", b"", None
    buf = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        buf += chunk
    while buf:
        kind, size = protocol.HEADER.unpack(buf[:8])
        payload, buf = buf[8:8 + size], buf[8 + size:]
        if kind == protocol.STDOUT:
            out += payload
        elif kind == protocol.STDERR:
            err += payload
        elif kind == protocol.EXIT:
            exit_ = json.loads(payload)
    return out, err, exit_


def wait_gone(pid: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.02)
    raise AssertionError(f"process {pid} still alive")


def zygote_pids(socket_path: str) -> list[int]:
    return [pid for pid, cmdline in _cmdlines() if cmdline.startswith(b"orlop shim zygote " + socket_path.encode())]


def _cmdlines() -> list[tuple[int, bytes]]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    found.append((int(entry), f.read()))
            except OSError:
                pass
    return found


def private_dirty_kib(pid: int) -> int:
    with open(f"/proc/{pid}/smaps_rollup") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("Private_Dirty:"))


@pytest.fixture
def zygote_socket():
    """A fresh exec root's zygote socket (the zygote starts at the first spawn); the zygote is
    killed afterwards (it would go by itself within seconds of its socket's removal)."""
    root = tempfile.mkdtemp(prefix="zy", dir="/run")
    path = os.path.join(root, zygote.SOCKET)
    yield path
    for pid in zygote_pids(path):
        os.kill(pid, signal.SIGKILL)
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(params=sorted(RUNTIMES))
def runtime(request):
    if not RUNTIMES[request.param]:
        pytest.skip(f"{request.param} is not installed")
    return RUNTIMES[request.param]


@pytest.fixture(params=["process", "zygote"])
def started_by(request, zygote_socket):
    """How the shim is started: as a process of its own, or forked by a zygote (orlopd's way)."""
    return zygote_socket if request.param == "zygote" else None


@pytest.fixture
def make_shim(tmp_path, rootfs_template, container_id, runtime, started_by):
    made = []

    def make(args: list[str], config_edit=None, **flags) -> ShimUnderTest:
        bundle = make_bundle(str(tmp_path / f"bundle{len(made)}"), args, rootfs_template)
        if config_edit:
            path = os.path.join(bundle, "config.json")
            config = json.load(open(path))
            config_edit(config)
            json.dump(config, open(path, "w"))
        shim = ShimUnderTest(str(tmp_path), bundle, runtime, f"{container_id}-{len(made)}", started_by, **flags)
        made.append(shim)
        return shim

    yield make
    for shim in made:
        if "shim_pid" in shim.answer:
            try:
                os.kill(shim.answer["shim_pid"], signal.SIGKILL)
            except ProcessLookupError:
                pass
        shim.cleanup()


def test_attach_output_exit_and_log(make_shim, started_by):
    shim = make_shim(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert shim.returncode == 0, shim.answer
    pid, shim_pid = shim.answer["pid"], shim.answer["shim_pid"]
    stat = open(f"/proc/{shim_pid}/stat").read().rsplit(")", 1)[1].split()
    assert stat[1] != str(os.getpid()), "reparented away from its starter"
    assert stat[1] not in map(str, zygote_pids(started_by or "-")), "and from its zygote"
    assert stat[3] == str(shim_pid), "in a session of its own"
    attach = shim.request({"op": "attach", "stdout": True, "stderr": True})
    assert json.loads(_read_line(attach)) == {"ok": True, "tty": False}
    waiter = shim.request({"op": "wait"})
    shim.start()
    out, err, exit_ = read_frames(attach)
    assert (out, err) == (b"out\n", b"err\n")
    assert exit_["exit_code"] == 3 and exit_["oom_killed"] is False
    assert json.loads(_read_line(waiter))["exit_code"] == 3
    wait_gone(shim_pid)
    assert json.load(open(os.path.join(shim.dir, protocol.EXIT_FILE)))["exit_code"] == 3
    entries = shim.log_entries()
    assert [(e["log"], e["stream"]) for e in entries] == [("out\n", "stdout"), ("err\n", "stderr")]
    assert entries[0]["time"].endswith("Z")
    assert not os.path.exists(f"/proc/{pid}")
    assert not os.path.exists(os.path.join(shim.root, shim.cid)), "the runtime's state is deleted"


def test_stdin_is_fed_and_closed_on_half_close(make_shim):
    shim = make_shim(["sh", "-c", "read line; echo got:$line; cat"], stdin=True, stdin_once=True)
    attach = shim.request({"op": "attach", "stdin": True, "stdout": True, "stderr": True})
    _read_line(attach)
    shim.start()
    attach.sendall(b"hello\nrest\n")
    attach.shutdown(socket.SHUT_WR)
    out, _, exit_ = read_frames(attach)
    assert out == b"got:hello\nrest\n" and exit_["exit_code"] == 0


def test_tty_exec_resize_and_kill(make_shim):
    shim = make_shim(["sh", "-c", "stty size; sleep 100"],
                     config_edit=lambda c: c["process"].update(terminal=True), tty=True, stdin=True)
    assert shim.returncode == 0, shim.answer
    assert shim.call({"op": "resize", "height": 33, "width": 111}) == {"ok": True}
    attach = shim.request({"op": "attach", "stdin": True, "stdout": True})
    assert json.loads(_read_line(attach))["tty"] is True
    shim.start()
    # exec, not a terminal: output framed per stream, exit code reported
    exec_ = shim.request({"op": "exec", "exec": "e1", "stdout": True, "stderr": True,
                          "process": {"args": ["sh", "-c", "echo in-exec; cat /proc/1/cmdline >&2; exit 7"],
                                      "cwd": "/", "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0}}})
    reply = json.loads(_read_line(exec_))
    assert reply["ok"] and reply["pid"] > 0
    out, err, exit_ = read_frames(exec_)
    assert out == b"in-exec\n" and err == b"sleep\0" + b"100\0" and exit_["exit_code"] == 7
    os.kill(shim.answer["pid"], signal.SIGKILL)
    out, _, exit_ = read_frames(attach)
    assert b"33 111" in out
    assert exit_["exit_code"] == 137


def test_ended_execs_are_let_go_and_a_running_one_can_be_killed(make_shim):
    shim = make_shim(["sleep", "100"])
    assert shim.returncode == 0, shim.answer
    shim.start()
    process = {"cwd": "/", "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0}}

    def exec_(key: str, *args: str) -> socket.socket:
        sock = shim.request({"op": "exec", "exec": key, "stdout": True, "stderr": True,
                             "process": {**process, "args": list(args)}})
        assert json.loads(_read_line(sock))["ok"]
        return sock

    count = server.FINISHED_EXECS + 3  # (a health check makes one every interval, for ever)
    for i in range(count):
        assert read_frames(exec_(f"e{i}", "sh", "-c", f"exit {i % 5}"))[2]["exit_code"] == i % 5
    # a late `wait` still gets a recent one's result; the oldest are forgotten, their keys not reused
    assert shim.call({"op": "wait", "exec": f"e{count - 1}"})["exit_code"] == (count - 1) % 5
    assert "no such exec" in shim.call({"op": "wait", "exec": "e0"})["error"]
    assert "in use" in shim.call({"op": "exec", "exec": f"e{count - 1}", "process": {**process, "args": ["true"]}})[
        "error"]
    stuck = exec_("stuck", "sleep", "77")
    assert shim.call({"op": "kill", "exec": "stuck", "signal": 9}) == {"ok": True}
    assert read_frames(stuck)[2]["exit_code"] == 137
    assert shim.call({"op": "kill", "exec": "stuck", "signal": 9}) == {"ok": True}  # ended: nothing to do
    assert shim.call({"op": "state"})["status"] == "running"


def test_oom_kill_is_recorded(make_shim):
    def limit(config):
        config["linux"].setdefault("resources", {})["memory"] = {"limit": 16 << 20, "swap": 16 << 20}

    shim = make_shim(["sh", "-c", "x=$(head -c 64m /dev/zero | tr '\\0' a); echo survived"], config_edit=limit)
    waiter = shim.request({"op": "wait"})
    shim.start()
    result = json.loads(_read_line(waiter))
    assert result["exit_code"] == 137 or result["oom_killed"], result
    assert result["oom_killed"] is True


def test_create_failure_is_reported_and_leaves_nothing(make_shim):
    shim = make_shim(["/no/such/binary"])
    if shim.returncode == 0:  # runc reports a missing executable at start, not create
        shim.start()
    else:
        assert "no such file or directory" in shim.answer["error"] or "not found" in shim.answer["error"]
        assert not os.path.exists(os.path.join(shim.root, shim.cid))


# -- the zygote ----------------------------------------------------------------------------------

def _fd_targets(pid: int) -> set[str]:
    targets = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            targets.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            pass
    return targets


def test_shims_outlive_their_zygote_which_comes_back(tmp_path, rootfs_template, container_id, zygote_socket):
    rt = RUNTIMES["orlop-runtime"]
    bundle = make_bundle(str(tmp_path / "a"), ["sleep", "100"], rootfs_template)
    first = ShimUnderTest(str(tmp_path), bundle, rt, f"{container_id}-a", zygote_socket)
    second = None
    try:
        assert first.returncode == 0, first.answer
        (z1,) = zygote_pids(zygote_socket)
        shim_pid = first.answer["shim_pid"]
        with open(f"/proc/{shim_pid}/cmdline", "rb") as f:
            assert f.read().startswith(f"orlop-shim {first.dir} --id {first.cid}".encode())
        # nothing of the zygote's stays open in a shim: its socket, its lock, its log
        zygote_fds = {t for t in _fd_targets(z1) if t.startswith("socket:") or t.startswith(os.path.dirname(zygote_socket))}
        assert zygote_fds and not zygote_fds & _fd_targets(shim_pid)
        # it shares the zygote's memory: a shim of its own has ~3.5 MiB private, a forked one ~1
        assert private_dirty_kib(shim_pid) < 2048
        os.kill(z1, signal.SIGKILL)
        wait_gone(z1)
        assert first.call({"op": "state"})["status"] == "running"
        # the next spawn starts another zygote
        bundle = make_bundle(str(tmp_path / "b"), ["sh", "-c", "echo second"], rootfs_template)
        second = ShimUnderTest(str(tmp_path / "b"), bundle, rt, f"{container_id}-b", zygote_socket)
        assert second.returncode == 0, second.answer
        (z2,) = zygote_pids(zygote_socket)
        assert z2 != z1
        attach = second.request({"op": "attach", "stdout": True, "stderr": True})
        _read_line(attach)
        second.start()
        out, _, exit_ = read_frames(attach)
        assert out == b"second\n" and exit_["exit_code"] == 0
        # the first container, its zygote long gone, still ends as any other
        waiter = first.request({"op": "wait"})
        first.start()
        os.kill(first.answer["pid"], signal.SIGKILL)
        assert json.loads(_read_line(waiter))["exit_code"] == 137
        wait_gone(shim_pid)
    finally:
        for shim in (first, second):
            if shim is not None:
                if "shim_pid" in shim.answer:
                    try:
                        os.kill(shim.answer["shim_pid"], signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                shim.cleanup()


def test_a_stale_zygote_makes_way_and_one_whose_socket_is_removed_goes(tmp_path, rootfs_template, container_id,
                                                                       zygote_socket):
    rt = RUNTIMES["orlop-runtime"]
    shims = []
    try:
        for n in range(2):
            bundle = make_bundle(str(tmp_path / f"b{n}"), ["true"], rootfs_template)
            shims.append(ShimUnderTest(str(tmp_path / f"b{n}"), bundle, rt, f"{container_id}-{n}", zygote_socket))
            assert shims[-1].returncode == 0, shims[-1].answer
            (pid,) = zygote_pids(zygote_socket)
            if n == 0:  # asked by another installation: it answers so, and goes
                with socket.socket(socket.AF_UNIX) as sock:
                    sock.connect(zygote_socket)
                    sock.sendall(json.dumps({"argv": [], "command": ["/elsewhere/orlop-shim"]}).encode() + b"\n")
                    assert json.loads(_read_line(sock)) == {"stale": True}
                wait_gone(pid)
                assert not os.path.exists(zygote_socket)
        os.unlink(zygote_socket)  # (with its exec root)
        wait_gone(pid, timeout=zygote.CHECK_SECONDS + 5)
    finally:
        for shim in shims:
            if "shim_pid" in shim.answer:
                try:
                    os.kill(shim.answer["shim_pid"], signal.SIGKILL)
                except ProcessLookupError:
                    pass
            shim.cleanup()


def test_without_a_zygote_a_shim_is_a_process_of_its_own(tmp_path, rootfs_template, container_id):
    bundle = make_bundle(str(tmp_path / "b"), ["true"], rootfs_template)
    state_dir = tempfile.mkdtemp(prefix="sh", dir="/run")
    try:
        answer = asyncio.run(shim_client.spawn(
            {"id": container_id, "bundle": bundle, "state_dir": state_dir, "runtime": RUNTIMES["orlop-runtime"],
             "runtime_root": os.path.join(state_dir, "rt"), "tty": False},
            zygote_socket="/nonexistent/zygote.sock"))  # it cannot listen there
        with open(f"/proc/{answer['shim_pid']}/cmdline", "rb") as f:
            assert b"--state-dir\0" + state_dir.encode() in f.read()
        os.kill(answer["shim_pid"], signal.SIGKILL)
    finally:
        subprocess.run([RUNTIMES["orlop-runtime"], "--root", os.path.join(state_dir, "rt"), "delete", "--force",
                        container_id], capture_output=True)
        shutil.rmtree(state_dir, ignore_errors=True)


@pytest.mark.skipif(not os.path.exists("/usr/local/bin/docker"), reason="no docker CLI")
def test_containers_outlive_both_the_zygote_and_orlopd():
    from daemon_fixture import running_daemon

    with running_daemon() as d:
        d.docker("run", "-d", "--name", "ticker", "busybox", "sh", "-c",
                 "trap 'exit 0' TERM; while true; do echo tick; sleep 0.1; done")
        pid = int(d.docker("inspect", "-f", "{{.State.Pid}}", "ticker").stdout)
        socket_path = os.path.join(d.exec_root, zygote.SOCKET)
        (z1,) = zygote_pids(socket_path)
        os.kill(z1, signal.SIGKILL)
        d.kill()  # kill -9 of orlopd too
        wait_gone(z1)
        assert os.path.exists(f"/proc/{pid}")
        d.start()
        assert d.docker("inspect", "-f", "{{.State.Running}} {{.State.Pid}}", "ticker").stdout.split() == \
            ["true", str(pid)]
        assert d.docker("exec", "ticker", "echo", "exec-ok").stdout == "exec-ok\n"
        assert d.docker("run", "--rm", "busybox", "echo", "after").stdout == "after\n"  # a new zygote
        (z2,) = zygote_pids(socket_path)
        assert z2 != z1
        d.docker("stop", "ticker")
        assert d.docker("inspect", "-f", "{{.State.ExitCode}}", "ticker").stdout.strip() == "0"
        assert "tick" in d.docker("logs", "ticker").stdout
        d.docker("rm", "ticker")
        assert d._shim_pids() == []  # (the zygote is no shim)
