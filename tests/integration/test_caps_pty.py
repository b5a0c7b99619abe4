"""Capabilities and the user switch on the real kernel, in forked children; ptys and
the console socket over real sockets, against runc's wire format and runc itself."""

from __future__ import annotations

import ctypes
import errno
import json
import os
import socket
import tempfile
import time
import traceback

import pytest
from busybox_bundle import default_config

from orlop.linux import caps, pty

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (setresuid, capset, bounding set)")

UID = GID = 1000
P = caps.parse_caps
PR_GET_KEEPCAPS = 7


def in_child(body) -> tuple[int, bytes]:
    """Run body(write_fd) in a forked child; return its exit code and what it wrote
    (its return value as JSON, or the traceback if it raised)."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(read_fd)
            result = body(write_fd)
            os.write(write_fd, json.dumps(result).encode())
            code = 0
        except BaseException:
            os.write(write_fd, traceback.format_exc().encode())
        finally:
            os._exit(code)
    os.close(write_fd)
    chunks = []
    while chunk := os.read(read_fd, 65536):
        chunks.append(chunk)
    os.close(read_fd)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), b"".join(chunks)


def child_result(body):
    code, output = in_child(body)
    assert code == 0, output.decode(errors="replace")
    return json.loads(output)


# A Docker-like small set: CAP_CHOWN only bounding, ambient NET_BIND_SERVICE, and a
# bit no kernel knows (62), which must be ignored rather than fail.
SETS = {
    "bounding": P(["CAP_CHOWN", "CAP_KILL", "CAP_SETUID", "CAP_NET_BIND_SERVICE"]) | 1 << 62,
    "effective": P(["CAP_KILL", "CAP_NET_BIND_SERVICE"]) | 1 << 62,
    "permitted": P(["CAP_KILL", "CAP_SETUID", "CAP_NET_BIND_SERVICE"]) | 1 << 62,
    "inheritable": P(["CAP_KILL", "CAP_NET_BIND_SERVICE"]),
    "ambient": P(["CAP_NET_BIND_SERVICE"]),
}
KNOWN = (1 << (caps.last_cap() + 1)) - 1


def apply(sets: dict[str, int] = SETS, uid: int = UID, gid: int = GID, gids: list[int] | None = None) -> None:
    caps.apply_capabilities(sets["bounding"], sets["effective"], sets["permitted"], sets["inheritable"],
                            sets["ambient"], uid=uid, gid=gid, additional_gids=[5, 27] if gids is None else gids)


@pytest.mark.parametrize("uid", [UID, 0])
def test_status_shows_exactly_the_configured_sets(uid):
    def body(_):
        apply(uid=uid, gid=uid)
        keepcaps = ctypes.CDLL(None).prctl(PR_GET_KEEPCAPS, 0, 0, 0, 0)
        return {"caps": caps.read_status_caps(), "uids": os.getresuid(), "gids": os.getresgid(),
                "groups": os.getgroups(), "keepcaps": keepcaps}

    got = child_result(body)
    assert got["caps"] == {"CapBnd": SETS["bounding"] & KNOWN, "CapEff": SETS["effective"] & KNOWN,
                           "CapPrm": SETS["permitted"] & KNOWN, "CapInh": SETS["inheritable"],
                           "CapAmb": SETS["ambient"]}
    assert got["uids"] == [uid] * 3 and got["gids"] == [uid] * 3
    assert sorted(got["groups"]) == [5, 27]
    assert got["keepcaps"] == 0


def test_keepcaps_is_cleared_so_a_later_setuid_drops_everything():
    sets = {**SETS, "effective": SETS["effective"] | P(["CAP_SETUID"])}

    def body(_):
        apply(sets, uid=0, gid=0)
        os.setuid(UID)  # the container's own setuid, e.g. su or a daemon dropping root
        return caps.read_status_caps()

    got = child_result(body)
    assert got["CapPrm"] == got["CapEff"] == 0
    assert got["CapAmb"] == 0  # the kernel clears ambient when root is left


@pytest.mark.parametrize("uid", [UID, 0])
@pytest.mark.parametrize("keep_chown", [True, False])
def test_dropped_cap_chown_makes_chown_fail(tmp_path, uid, keep_chown):
    target = tmp_path / "owned-by-root"
    target.write_text("")
    chown = P(["CAP_CHOWN"]) if keep_chown else 0
    sets = {**SETS, "effective": SETS["effective"] | chown, "permitted": SETS["permitted"] | chown}

    def body(_):
        fd = os.open(target, os.O_RDONLY)  # opened before: tmp_path is not searchable by uid 1000
        apply(sets, uid=uid, gid=uid)
        try:
            os.chown(fd, 4242, 4242)
        except PermissionError:
            return "EPERM"
        return "chowned"

    assert child_result(body) == ("chowned" if keep_chown else "EPERM")
    assert os.stat(target).st_uid == (4242 if keep_chown else 0)


def exec_cat_status(sets: dict[str, int]) -> dict[str, int]:
    def body(write_fd):
        apply(sets)
        os.dup2(write_fd, 1)
        os.execv("/bin/cat", ["cat", "/proc/self/status"])

    code, output = in_child(body)
    assert code == 0, output.decode(errors="replace")
    return caps.parse_status_caps(output.decode())


def test_ambient_caps_survive_execve_for_a_non_root_user():
    after = exec_cat_status(SETS)
    nbs = P(["CAP_NET_BIND_SERVICE"])
    # cat has no file caps: a non-root uid keeps only what is ambient
    assert after == {"CapAmb": nbs, "CapPrm": nbs, "CapEff": nbs, "CapInh": SETS["inheritable"],
                     "CapBnd": SETS["bounding"] & KNOWN}
    # without the ambient set, the same user loses everything at execve
    assert exec_cat_status({**SETS, "ambient": 0})["CapEff"] == 0


def test_ambient_caps_outside_permitted_and_inheritable_are_skipped_like_runc():
    sets = {**SETS, "ambient": P(["CAP_NET_BIND_SERVICE", "CAP_SETUID", "CAP_CHOWN"])}
    assert child_result(lambda _: (apply(sets), caps.read_status_caps())[1])["CapAmb"] == \
        P(["CAP_NET_BIND_SERVICE"])


def test_refused_sets_name_the_syscall_and_the_reason():
    sets = {**SETS, "effective": P(["CAP_SYS_ADMIN"])}  # not in permitted
    code, output = in_child(lambda _: apply(sets))
    assert code == 1
    assert "PermissionError: [Errno 1] capset: Operation not permitted (effective CAP_SYS_ADMIN not in permitted)" \
        in output.decode()


def test_setgroups_failure_names_the_syscall():
    def body(_):
        apply({**SETS, "bounding": 0, "effective": 0, "permitted": 0, "inheritable": 0, "ambient": 0},
              uid=UID, gid=GID, gids=[])
        caps.set_groups([1, 2])  # no CAP_SETGID any more

    code, output = in_child(body)
    assert code == 1 and "setgroups([1, 2]): Operation not permitted" in output.decode()


# --- pty ---------------------------------------------------------------------------------


@pytest.fixture
def console_server():
    """A listening console socket, like containerd's or conmon's (short path: sun_path is 108 bytes)."""
    directory = tempfile.mkdtemp(prefix="orlop-console-")
    path = os.path.join(directory, "console.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    yield path, server
    server.close()
    os.unlink(path)
    os.rmdir(directory)


def read_until(fd: int, marker: bytes, timeout: float = 5) -> bytes:
    output = b""
    deadline = time.monotonic() + timeout
    while marker not in output and time.monotonic() < deadline:
        try:
            output += os.read(fd, 4096)
        except OSError:
            break
    return output


def test_pty_master_round_trip_over_the_console_socket(console_server):
    path, server = console_server
    master, slave_path = pty.open_pty()
    assert slave_path.startswith("/dev/pts/") and not os.get_inheritable(master)
    pty.send_console_fd(path, master, slave_path)
    os.close(master)  # from here on only the received copy keeps the pty alive
    conn, _ = server.accept()
    received, name = pty.recv_console_fd(conn)
    conn.close()
    assert name == slave_path
    assert not os.get_inheritable(received)  # MSG_CMSG_CLOEXEC, as runc's RecvFile
    slave = os.open(slave_path, os.O_RDWR | os.O_NOCTTY)
    os.write(slave, b"hello through the pty\n")
    assert read_until(received, b"\n") == b"hello through the pty\r\n"  # the tty's onlcr
    os.write(received, b"typed\n")
    assert os.read(slave, 100) == b"typed\n"
    os.close(slave)
    os.close(received)


def test_message_is_byte_compatible_with_runc_recvfile(console_server):
    """runc's RecvFile (what go-runc and recvtty use) demands one SCM_RIGHTS with one fd,
    oob of exactly CMSG_SPACE(4) bytes, and the name as the payload."""
    path, server = console_server
    master, slave_path = pty.open_pty()
    pty.send_console_fd(path, master, slave_path)
    conn, _ = server.accept()
    payload, ancillary, flags, _ = conn.recvmsg(4096, socket.CMSG_SPACE(4))
    conn.close()
    assert payload == slave_path.encode() and flags & socket.MSG_CTRUNC == 0
    assert [(level, kind, len(data)) for level, kind, data in ancillary] == \
        [(socket.SOL_SOCKET, socket.SCM_RIGHTS, 4)]
    fd = int.from_bytes(ancillary[0][2], "little", signed=True)
    assert os.path.samestat(os.fstat(fd), os.fstat(master))
    os.close(fd)
    os.close(master)


def test_receiving_anything_but_one_fd_is_refused_and_leaks_nothing():
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    r, w = os.pipe()
    socket.send_fds(theirs, [b"two"], [r, w])
    before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(OSError, match="expected one file descriptor from the console socket, got 2"):
        pty.recv_console_fd(ours)
    assert len(os.listdir("/proc/self/fd")) == before
    theirs.sendall(b"no fd at all")
    with pytest.raises(OSError, match="got 0"):
        pty.recv_console_fd(ours)
    for fd in (r, w):
        os.close(fd)
    ours.close()
    theirs.close()


def test_send_errors_name_what_failed(tmp_path):
    master, _ = pty.open_pty()
    with pytest.raises(FileNotFoundError, match=r"connect .*/nowhere.sock: No such file"):
        pty.send_console_fd(str(tmp_path / "nowhere.sock"), master, "/dev/pts/0")
    ours, theirs = socket.socketpair()
    for name in ("", "x" * 4096):  # runc: a name must be shorter than 4096; empty would send nothing
        with pytest.raises(ValueError, match="console name must be 1 to 4095 bytes"):
            pty.send_console_fd_on(ours.fileno(), master, name)
    pty.send_console_fd_on(ours.fileno(), master, "x" * 4095)
    assert ours.fileno() >= 0  # the caller's socket stays open
    fd, name = pty.recv_console_fd(theirs)
    assert name == "x" * 4095
    for f in (fd, master):
        os.close(f)
    ours.close()
    theirs.close()
    with pytest.raises(FileNotFoundError, match="open /nonexistent/ptmx"):
        pty.open_pty("/nonexistent/ptmx")


def test_slave_via_master_needs_no_path():
    master, slave_path = pty.open_pty()
    slave = pty.open_slave_via_master(master)
    assert os.path.samestat(os.fstat(slave), os.stat(slave_path))
    assert not os.get_inheritable(slave)
    os.write(slave, b"peer\n")
    assert read_until(master, b"\n") == b"peer\r\n"
    os.close(slave)
    os.close(master)


def test_window_size_set_on_master_is_seen_on_slave():
    master, slave_path = pty.open_pty()
    slave = os.open(slave_path, os.O_RDWR | os.O_NOCTTY)
    pty.set_window_size(master, 33, 101)
    assert pty.get_window_size(slave) == (33, 101) == os.get_terminal_size(slave)[::-1]
    os.close(slave)
    os.close(master)
    with pytest.raises(OSError, match=r"ioctl\(TIOCGWINSZ\)") as e:
        pty.get_window_size(os.open("/dev/null", os.O_RDONLY))
    assert e.value.errno == errno.ENOTTY


def test_controlling_terminal_in_a_new_session():
    master, slave_path = pty.open_pty()

    def body(_):
        slave = os.open(slave_path, os.O_RDWR | os.O_NOCTTY)
        pty.set_controlling_terminal(slave)
        report = {"tty": os.ttyname(0), "same": [os.path.samestat(os.fstat(fd), os.stat(slave_path))
                                                 for fd in (0, 1, 2)],
                  "leader": os.getsid(0) == os.getpid(), "foreground": os.tcgetpgrp(0) == os.getpgrp(),
                  "inheritable": [os.get_inheritable(fd) for fd in (0, 1, 2)],
                  "ctty": os.open("/dev/tty", os.O_RDWR) > 2}
        os.write(1, json.dumps(report).encode() + b"\n")  # through the pty itself
        return None

    code, output = in_child(body)
    assert code == 0, output
    report = json.loads(read_until(master, b"}\r\n").decode())
    os.close(master)
    assert report == {"tty": slave_path, "same": [True] * 3, "leader": True, "foreground": True,
                      "inheritable": [True] * 3, "ctty": True}


def test_receives_runcs_console_master(runc, bundle_factory, container_id, console_server):
    """The other direction of compatibility: what runc sends, recv_console_fd takes."""
    path, server = console_server
    bundle = bundle_factory(["sh", "-c", "stty size; echo done"], default_config())
    config_path = os.path.join(bundle, "config.json")
    with open(config_path) as f:
        config = json.load(f)
    config["process"]["terminal"] = True
    config["process"]["consoleSize"] = {"height": 33, "width": 101}
    with open(config_path, "w") as f:
        json.dump(config, f)
    runc("create", "--console-socket", path, "--bundle", bundle, container_id)
    conn, _ = server.accept()
    master, name = pty.recv_console_fd(conn)
    conn.close()
    assert name  # runc sends the master's file name
    runc("start", container_id)
    output = read_until(master, b"done")
    os.close(master)
    assert b"33 101" in output and b"done" in output
