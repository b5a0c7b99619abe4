"""seccomp filters installed on the real kernel, each in a forked child (a filter can never
be removed): errno values, argument conditions, kill and trap actions, LOG, NOTIFY,
TSYNC, and Docker's default profile down to an exec'd busybox."""

from __future__ import annotations

import ctypes
import errno
import json
import os
import platform
import resource
import signal
import threading
import time
import traceback

import pytest

from data.seccomp.moby_profile import DOCKER_DEFAULT, MISSING, docker_default_profile, kernel_version
from orlop.linux import seccomp

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (CAP_SYS_ADMIN to load a filter, unshare)")

BUSYBOX = "/bin/busybox"
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
SYS_KEYCTL, SYS_FCHMODAT2 = 250, 452
KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING = 0, -3
CLONE_NEWNS, CLONE_NEWUTS, MS_REC, MS_PRIVATE = 0x20000, 0x4000000, 0x4000, 0x40000
AT_FDCWD = -100
x86_64_only = pytest.mark.skipif(platform.machine() != "x86_64", reason="probes use x86_64 syscall numbers")


def in_child(body, timeout: float = 20) -> tuple[int, bytes]:
    """Run body(write_fd) in a forked child; return its wait status and what it wrote (its
    return value as JSON, or the traceback if it raised). A child still running after
    `timeout` seconds is killed."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(read_fd)
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # SIGSYS would dump core
            result = body(write_fd)
            os.write(write_fd, json.dumps(result).encode())
            code = 0
        except BaseException:
            os.write(write_fd, traceback.format_exc().encode())
        finally:
            os._exit(code)
    os.close(write_fd)
    output = _read_all(read_fd, time.monotonic() + timeout, pid)
    return os.waitpid(pid, 0)[1], output


def _read_all(fd: int, deadline: float, pid: int) -> bytes:
    chunks = []
    os.set_blocking(fd, False)
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                os.close(fd)
                raise AssertionError("the child hung") from None
            time.sleep(0.01)
            continue
        if not chunk:
            os.close(fd)
            return b"".join(chunks)
        chunks.append(chunk)


def child_result(body):
    status, output = in_child(body)
    assert os.waitstatus_to_exitcode(status) == 0, output.decode(errors="replace")
    return json.loads(output)


def outcome(call) -> str | int:
    """"ok", or the errno a call failed with (OSError from os, -1 + errno from libc)."""
    try:
        ctypes.set_errno(0)
        result = call()
    except OSError as e:
        return e.errno
    return ctypes.get_errno() if isinstance(result, int) and result == -1 else "ok"


def allow_all_but(*rules: dict, **fields) -> dict:
    return {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": list(rules), **fields}


def test_errno_ret_reaches_the_caller(tmp_path):
    profile = allow_all_but(
        {"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
        {"names": ["rmdir"], "action": "SCMP_ACT_ERRNO"},
        {"names": ["symlink", "symlinkat"], "action": "SCMP_ACT_TRACE"})  # no tracer: ENOSYS
    (tmp_path / "d").mkdir()

    def body(_):
        assert seccomp.apply(profile) is None
        return {"getcwd": outcome(os.getcwd), "mkdir": outcome(lambda: os.mkdir(tmp_path / "new")),
                "rmdir": outcome(lambda: os.rmdir(tmp_path / "d")),
                "symlink": outcome(lambda: os.symlink("x", tmp_path / "l")), "getpid": outcome(os.getpid)}
    assert child_result(body) == {"getcwd": errno.ENOSYS, "mkdir": errno.ENOSYS, "rmdir": errno.EPERM,
                                  "symlink": errno.ENOSYS, "getpid": "ok"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"], "the refused calls did nothing"


def test_argument_conditions():
    """personality(0xffffffff) only asks for the persona: refuse that one call, not the others."""
    profile = allow_all_but({"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EACCES,
                             "args": [{"index": 0, "value": 0xFFFFFFFF, "op": "SCMP_CMP_EQ"}]})
    libc.personality.argtypes = (ctypes.c_ulong,)

    def body(_):
        before = outcome(lambda: libc.personality(0xFFFFFFFF))
        seccomp.apply(profile)
        return [before, outcome(lambda: libc.personality(0xFFFFFFFF)), outcome(lambda: libc.personality(0))]
    assert child_result(body) == ["ok", errno.EACCES, "ok"]


@pytest.mark.parametrize("action", ["SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD",
                                    "SCMP_ACT_TRAP"])
def test_kill_and_trap_end_the_process_with_sigsys(action):
    profile = allow_all_but({"names": ["uname"], "action": action})

    def body(write_fd):
        seccomp.apply(profile)
        os.write(write_fd, b"loaded;")
        os.uname()
        return "survived"
    status, output = in_child(body)
    assert output == b"loaded;"
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGSYS


def test_log_action_allows():
    profile = allow_all_but({"names": ["getcwd"], "action": "SCMP_ACT_LOG"},
                            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"},
                            flags=["SECCOMP_FILTER_FLAG_LOG"])

    def body(_):
        seccomp.apply(profile)
        with open("/proc/self/status") as f:
            mode = [line.split()[1] for line in f if line.startswith("Seccomp:")]
        return [outcome(os.getcwd), outcome(lambda: os.mkdir("/nonexistent-dir/x")), mode]
    assert child_result(body) == ["ok", errno.EPERM, ["2"]]


@pytest.mark.parametrize("flags", [None, ["SECCOMP_FILTER_FLAG_TSYNC"]])
def test_notify_returns_the_listener_fd(tmp_path, flags):
    """The fd is seccomp's listener (close-on-exec); once nobody listens the call fails with
    ENOSYS. With TSYNC the kernel needs TSYNC_ESRCH as well, which load_filter adds."""
    profile = allow_all_but({"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"},
                            **({"flags": flags} if flags else {}))

    def body(_):
        fd = seccomp.apply(profile)
        link = os.readlink(f"/proc/self/fd/{fd}")
        inheritable = os.get_inheritable(fd)
        os.close(fd)
        return [link, inheritable, outcome(lambda: os.mkdir(tmp_path / "n"))]
    assert child_result(body) == ["anon_inode:seccomp notify", False, errno.ENOSYS]


@pytest.mark.parametrize(("flags", "other_thread"), [([], "ok"), (["SECCOMP_FILTER_FLAG_TSYNC"], errno.EPERM)])
def test_tsync_puts_every_thread_under_the_filter(flags, other_thread):
    profile = allow_all_but({"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"}, flags=flags)

    def body(_):
        go, seen = threading.Event(), []
        thread = threading.Thread(target=lambda: (go.wait(), seen.append(outcome(os.getcwd))))
        thread.start()
        seccomp.apply(profile)
        go.set()
        thread.join()
        return [outcome(os.getcwd), *seen]
    assert child_result(body) == [errno.EPERM, other_thread]


def test_an_invalid_program_is_refused_with_the_syscall_named():
    jump_out = bytes.fromhex("0500000010000000")  # ja +16: past the end

    def body(_):
        try:
            seccomp.load_filter(jump_out)
        except OSError as e:
            return [e.errno, str(e)]
    assert child_result(body) == [errno.EINVAL, "[Errno 22] seccomp(SECCOMP_SET_MODE_FILTER, 0): Invalid argument "
                                                "(a flag this kernel does not know, or a program it refuses)"]


def probe_docker_calls(tmp_path) -> dict:
    """The calls Docker's default profile refuses and some it lets through."""
    target = tmp_path / "mnt"
    return {
        "unshare": outcome(lambda: libc.unshare(CLONE_NEWUTS)),
        "mount": outcome(lambda: libc.mount(b"none", bytes(target), b"tmpfs", 0, None)),
        "keyctl": outcome(lambda: libc.syscall(SYS_KEYCTL, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0)),
        "fchmodat2": outcome(lambda: libc.syscall(SYS_FCHMODAT2, AT_FDCWD, bytes(target), 0o755, 0)),
        "getpid": outcome(os.getpid),
    }


def private_mount_namespace() -> None:
    # Whatever the probes mount stays in the child, even if a filter failed to refuse it.
    assert libc.unshare(CLONE_NEWNS) == 0
    assert libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None) == 0


@pytest.fixture
def docker_profile() -> dict:
    if not os.path.exists(DOCKER_DEFAULT):
        pytest.skip(MISSING)
    return docker_default_profile()


@pytest.fixture
def busybox() -> str:
    if not os.access(BUSYBOX, os.X_OK):
        pytest.skip("needs /bin/busybox (apt-get install busybox-static)")
    return BUSYBOX


@x86_64_only
def test_docker_default_profile(tmp_path, docker_profile, busybox):
    """Docker's default profile (default capabilities, this machine's arch) refuses unshare,
    mount and keyctl with EPERM, answers ENOSYS to a call newer than it knows (fchmodat2:
    libc then falls back), and a shell exec'd under it runs and forks."""
    (tmp_path / "mnt").mkdir()
    profile, cache = docker_profile, str(tmp_path / "cache")

    def body(write_fd):
        private_mount_namespace()
        seccomp.apply(profile, cache)
        os.write(write_fd, json.dumps(probe_docker_calls(tmp_path)).encode() + b"\n")
        os.dup2(write_fd, 1)
        os.execv(busybox, [busybox, "sh", "-c", f"echo ok; {busybox} true && echo forked"])
    status, output = in_child(body)
    assert os.waitstatus_to_exitcode(status) == 0, output.decode(errors="replace")
    probes, shell = output.decode().split("\n", 1)
    assert json.loads(probes) == {"unshare": errno.EPERM, "mount": errno.EPERM, "keyctl": errno.EPERM,
                                  "fchmodat2": errno.ENOSYS, "getpid": "ok"}
    assert shell == "ok\nforked\n"
    assert os.listdir(cache) == [seccomp.cache_key(profile) + ".bpf"]


@x86_64_only
def test_same_calls_without_a_filter(tmp_path):
    """The control for the test above: as root and without a filter every probe succeeds
    (fchmodat2 from Linux 6.6 on)."""
    (tmp_path / "mnt").mkdir()

    def body(_):
        private_mount_namespace()
        return probe_docker_calls(tmp_path)
    fchmodat2 = "ok" if kernel_version() >= (6, 6) else errno.ENOSYS
    assert child_result(body) == {"unshare": "ok", "mount": "ok", "keyctl": "ok", "fchmodat2": fchmodat2,
                                  "getpid": "ok"}


def test_a_warm_cache_is_used_by_the_next_container(tmp_path, docker_profile, monkeypatch):
    profile, cache = docker_profile, str(tmp_path)
    seccomp.compiled(profile, cache)
    monkeypatch.setattr(seccomp, "_compile", None)  # would fail if called

    def body(_):
        seccomp.apply(profile, cache)
        return outcome(lambda: libc.unshare(CLONE_NEWUTS))
    assert child_result(body) == errno.EPERM
