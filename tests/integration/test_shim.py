"""orlop-shim with orlop-runtime and runc: it creates the container, outlives its
starter, keeps the output in the json-file log and for attached clients, feeds
stdin, runs execs, records the exit (and an OOM kill) in exit.json."""

from __future__ import annotations

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

from orlop.shim import protocol

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHIM = os.path.join(REPO, ".venv", "bin", "orlop-shim")
RUNTIMES = {"orlop-runtime": os.path.join(REPO, ".venv", "bin", "orlop-runtime"), "runc": shutil.which("runc")}


class ShimUnderTest:
    def __init__(self, base: str, bundle: str, runtime: str, cid: str, **flags) -> None:
        self.dir = tempfile.mkdtemp(prefix="sh", dir="/run")  # socket paths stay short
        self.root = os.path.join(self.dir, "rt")
        self.cid = cid
        self.runtime = runtime
        self.log = os.path.join(base, "ctr-json.log")
        argv = [SHIM, "--id", cid, "--bundle", bundle, "--state-dir", self.dir, "--runtime", runtime,
                "--runtime-root", self.root, "--log-path", self.log]
        for flag, value in flags.items():
            argv += [f"--{flag.replace('_', '-')}"] + ([] if value is True else [str(value)])
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        self.answer = json.loads(done.stdout)
        self.returncode = done.returncode

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


@pytest.fixture(params=sorted(RUNTIMES))
def runtime(request):
    if not RUNTIMES[request.param]:
        pytest.skip(f"{request.param} is not installed")
    return RUNTIMES[request.param]


@pytest.fixture
def make_shim(tmp_path, rootfs_template, container_id, runtime):
    made = []

    def make(args: list[str], config_edit=None, **flags) -> ShimUnderTest:
        bundle = make_bundle(str(tmp_path / f"bundle{len(made)}"), args, rootfs_template)
        if config_edit:
            path = os.path.join(bundle, "config.json")
            config = json.load(open(path))
            config_edit(config)
            json.dump(config, open(path, "w"))
        shim = ShimUnderTest(str(tmp_path), bundle, runtime, f"{container_id}-{len(made)}", **flags)
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


def test_attach_output_exit_and_log(make_shim):
    shim = make_shim(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert shim.returncode == 0, shim.answer
    pid, shim_pid = shim.answer["pid"], shim.answer["shim_pid"]
    assert open(f"/proc/{shim_pid}/stat").read().split()[3] != str(os.getpid()), "reparented away from its starter"
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
