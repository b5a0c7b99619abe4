"""orlop-shim's event loop: one container, its execs, their stdio, logs and exits.

The shim is the container's parent (a child subreaper: the runtime's init child
is reparented to it when the runtime command exits), so it alone can collect the
exit status. It holds the stdio pipes (or the pty master), copies output to the
json-file log and to attached clients, feeds stdin, and answers the daemon's
requests on a unix socket (see protocol.py). When the init process has exited
and its output is drained, the exit is written to exit.json (atomically, before
anything else, so a daemon that was down finds it), the runtime's state is
deleted, waiters are told, and the shim exits.

Single-threaded, `selectors` + non-blocking fds; SIGCHLD arrives through the
signal wakeup fd.
"""

from __future__ import annotations

import errno
import os
import selectors
import signal
import socket
import time

from orlop import fastjson
from orlop.fsutil import write_atomic
from orlop.shim import protocol
from orlop.shim.logs import JsonFileLog, rfc3339_nano
from orlop.shim.runtime import Runtime, RuntimeError_

DRAIN_SECONDS = 2.0   # after an exit, how long output may still trickle in
CLIENT_BUFFER = 4 << 20  # a client this far behind is dropped, never the container


class Options:
    def __init__(self, **values) -> None:
        self.id: str = values["id"]
        self.bundle: str = values["bundle"]
        self.state_dir: str = values["state_dir"]
        self.runtime: str = values["runtime"]
        self.runtime_root: str = values["runtime_root"]
        self.log_path: str | None = values.get("log_path")
        self.log_max_size: int = int(values.get("log_max_size") or 0)
        self.log_max_file: int = int(values.get("log_max_file") or 1)
        self.tty: bool = bool(values.get("tty"))
        self.stdin: bool = bool(values.get("stdin"))
        self.stdin_once: bool = bool(values.get("stdin_once"))


class Process:
    """The container's init (key "") or one exec: its fds, its clients, its end."""

    def __init__(self, key: str, tty: bool) -> None:
        self.key = key
        self.tty = tty
        self.pid = 0
        self.master: int | None = None
        self.outputs: dict[int, int] = {}  # fd -> STDOUT/STDERR
        self.stdin: int | None = None
        self.stdin_pending = bytearray()
        self.clients: list[Client] = []
        self.waiters: list[Client] = []
        self.exit_code: int | None = None
        self.exited_at = 0.0
        self.oom_killed = False
        self.result: dict | None = None  # set once exited and drained


class Client:
    """One connection on the control socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.inbuf = bytearray()
        self.out = bytearray()
        self.process: Process | None = None  # attached to
        self.streams: tuple[bool, bool] = (True, True)  # stdout, stderr wanted
        self.stdin = False
        self.stdin_once = False
        self.reading = True
        self.closing = False  # close once `out` is flushed


class Shim:
    def __init__(self, options: Options) -> None:
        self.options = options
        self.dir = options.state_dir
        self.runtime = Runtime(options.runtime, options.runtime_root, options.state_dir)
        self.selector = selectors.DefaultSelector()
        self.init = Process("", options.tty)
        self.processes: dict[str, Process] = {"": self.init}
        self.by_pid: dict[int, Process] = {}
        self.log: JsonFileLog | None = None
        self.oom_file: str | None = None
        self.oom_before = 0
        self.clients: dict[socket.socket, Client] = {}
        self.listener: socket.socket | None = None
        self._wake_r = -1

    # -- set-up ----------------------------------------------------------------------------------
    def listen(self) -> None:
        path = os.path.join(self.dir, protocol.SOCKET)
        if os.path.exists(path):
            os.unlink(path)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        os.chmod(path, 0o600)
        self.listener.listen(64)
        self.listener.setblocking(False)
        self.selector.register(self.listener, selectors.EVENT_READ, self._accept)
        self._wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        self.selector.register(self._wake_r, selectors.EVENT_READ, self._reap)

    def create(self) -> int:
        """`runtime create` with the stdio the shim holds; returns the container's host PID."""
        o = self.options
        if o.log_path:
            self.log = JsonFileLog(o.log_path, o.log_max_size, o.log_max_file)
        pid_file = os.path.join(self.dir, protocol.INIT_PID_FILE)
        args = ["create", "--bundle", o.bundle, "--pid-file", pid_file]
        self._spawn(self.init, args, o.id, stdin=o.stdin)
        self.init.pid = int(open(pid_file).read())
        self.by_pid[self.init.pid] = self.init
        self.oom_file, self.oom_before = _oom_counter(self.init.pid)
        return self.init.pid

    def _spawn(self, process: Process, args: list[str], container_id: str, *, stdin: bool) -> None:
        """Run a runtime command that starts `process` (create, or exec --detach) wired to new stdio."""
        child_fds: list[int] = []
        console = None
        try:
            if process.tty:
                console = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                console_path = os.path.join(self.dir, "console.sock")
                if os.path.exists(console_path):
                    os.unlink(console_path)
                console.bind(console_path)
                console.listen(1)
                args += ["--console-socket", console_path]
                stdio = None
            else:
                out_r, out_w = os.pipe2(os.O_CLOEXEC)
                err_r, err_w = os.pipe2(os.O_CLOEXEC)
                child_fds += [out_w, err_w]
                process.outputs = {out_r: protocol.STDOUT, err_r: protocol.STDERR}
                if stdin:
                    in_r, in_w = os.pipe2(os.O_CLOEXEC)
                    child_fds.append(in_r)
                    process.stdin = in_w
                else:
                    in_r = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
                    child_fds.append(in_r)
                stdio = (in_r, out_w, err_w)
            self.runtime.run([*args, container_id], stdio)
            if console is not None:
                console.settimeout(5)
                conn, _ = console.accept()
                with conn:
                    _, fds, _, _ = socket.recv_fds(conn, 16, 1)
                if not fds:
                    raise RuntimeError_("the runtime sent no terminal on the console socket")
                process.master = fds[0]
                process.outputs = {fds[0]: protocol.STDOUT}
                if stdin:
                    process.stdin = os.dup(fds[0])
        except BaseException:
            for fd in list(process.outputs) + ([process.stdin] if process.stdin is not None else []):
                os.close(fd)
            process.outputs, process.stdin = {}, None
            raise
        finally:
            for fd in child_fds:
                os.close(fd)
            if console is not None:
                console.close()
                os.unlink(os.path.join(self.dir, "console.sock"))
        for fd in process.outputs:
            os.set_blocking(fd, False)
            self.selector.register(fd, selectors.EVENT_READ, self._output)
        if process.stdin is not None:
            os.set_blocking(process.stdin, False)

    # -- the loop --------------------------------------------------------------------------------
    def serve(self) -> None:
        """Until the container has exited, and its waiters and attached clients have been told
        (a client that does not read its last bytes within DRAIN_SECONDS is left behind)."""
        while True:
            timeout = None
            if any(p.exit_code is not None and p.result is None for p in self.processes.values()):
                timeout = 0.1
            if self.init.result is not None:
                if self.finished() or time.monotonic() > self.init.exited_at + 2 * DRAIN_SECONDS:
                    return
                timeout = 0.1
            for key, mask in self.selector.select(timeout):
                key.data(key.fileobj, mask)
            for process in list(self.processes.values()):
                self._maybe_finish(process)

    def _accept(self, listener: socket.socket, mask: int) -> None:
        try:
            sock, _ = listener.accept()
        except BlockingIOError:
            return
        sock.setblocking(False)
        self.clients[sock] = Client(sock)
        self.selector.register(sock, selectors.EVENT_READ, self._client_event)

    def _client_event(self, sock: socket.socket, mask: int) -> None:
        client = self.clients.get(sock)
        if client is None:
            return
        if mask & selectors.EVENT_WRITE:
            self._flush(client)
        if mask & selectors.EVENT_READ and client.reading:
            try:
                data = sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data = b""
            if client.process is None and not data:
                self._drop(client)
            elif client.process is None:
                client.inbuf += data
                if b"\n" in client.inbuf:
                    line, _, rest = bytes(client.inbuf).partition(b"\n")
                    client.inbuf = bytearray()
                    self._request(client, line, rest)
            else:
                self._client_stdin(client, data)

    # -- requests --------------------------------------------------------------------------------
    def _request(self, client: Client, line: bytes, rest: bytes) -> None:
        try:
            request = fastjson.loads(line)
            op = request.get("op")
            handler = getattr(self, "_op_" + str(op).replace("-", "_"), None)
            if handler is None:
                raise ValueError(f"unknown request {op!r}")
            handler(client, request, rest)
        except (ValueError, KeyError, OSError, RuntimeError_) as e:
            self._reply(client, {"error": str(e)}, close=True)

    def _process(self, request: dict) -> Process:
        key = request.get("exec") or ""
        process = self.processes.get(key)
        if process is None:
            raise KeyError(f"no such exec: {key}")
        return process

    def _op_state(self, client: Client, request: dict, rest: bytes) -> None:
        init = self.init
        status = "stopped" if init.exit_code is not None else "running"
        self._reply(client, {"pid": init.pid, "status": status, "exit": init.result}, close=True)

    def _op_wait(self, client: Client, request: dict, rest: bytes) -> None:
        process = self._process(request)
        if process.result is not None:
            self._reply(client, process.result, close=True)
        else:
            process.waiters.append(client)

    def _op_resize(self, client: Client, request: dict, rest: bytes) -> None:
        import fcntl
        import struct
        import termios

        process = self._process(request)
        if process.master is None:
            raise ValueError("the process has no terminal")
        fcntl.ioctl(process.master, termios.TIOCSWINSZ,
                    struct.pack("HHHH", int(request["height"]), int(request["width"]), 0, 0))
        self._reply(client, {"ok": True}, close=True)

    def _op_close_stdin(self, client: Client, request: dict, rest: bytes) -> None:
        self._close_stdin(self._process(request))
        self._reply(client, {"ok": True}, close=True)

    def _op_attach(self, client: Client, request: dict, rest: bytes) -> None:
        process = self._process(request)
        self._reply(client, {"ok": True, "tty": process.tty})
        self._attach(client, process, request, rest)

    def _op_exec(self, client: Client, request: dict, rest: bytes) -> None:
        key = request["exec"]
        if not key or key in self.processes:
            raise ValueError(f"exec id {key!r} is empty or in use")
        if self.init.exit_code is not None:
            raise ValueError(f"container {self.options.id} is not running")
        spec = request["process"]
        process = Process(key, bool(spec.get("terminal")))
        spec_path = os.path.join(self.dir, f"exec-{key}.json")
        pid_file = os.path.join(self.dir, f"exec-{key}.pid")
        write_atomic(spec_path, fastjson.dumps(spec).encode())
        try:
            self._spawn(process, ["exec", "--detach", "--process", spec_path, "--pid-file", pid_file],
                        self.options.id, stdin=bool(request.get("stdin")))
            process.pid = int(open(pid_file).read())
        finally:
            for path in (spec_path, pid_file):
                if os.path.exists(path):
                    os.unlink(path)
        self.processes[key] = process
        self.by_pid[process.pid] = process
        self._reap(None, 0)  # it may have exited already
        self._reply(client, {"ok": True, "pid": process.pid, "tty": process.tty}, close=bool(request.get("detach")))
        if not request.get("detach"):
            self._attach(client, process, request, rest)

    def _attach(self, client: Client, process: Process, request: dict, rest: bytes) -> None:
        client.process = process
        client.streams = (request.get("stdout", True), request.get("stderr", True))
        client.stdin = bool(request.get("stdin")) and process.stdin is not None
        client.stdin_once = bool(request.get("stdin_once", process is not self.init or self.options.stdin_once))
        if process.result is not None:
            self._send_exit(client, process)
            return
        process.clients.append(client)
        if not client.stdin:
            client.reading = True  # only to notice a hang-up
        if rest:
            self._client_stdin(client, rest)

    def _client_stdin(self, client: Client, data: bytes) -> None:
        process = client.process
        if not data:  # half-close by the client, or gone
            client.reading = False
            self._update(client)
            if client.stdin and client.stdin_once and not process.tty:  # a TTY stays open, as dockerd's
                self._close_stdin(process)
            return
        if client.stdin and process.stdin is not None:
            process.stdin_pending += data
            self._feed_stdin(process)

    def _feed_stdin(self, process: Process) -> None:
        while process.stdin_pending and process.stdin is not None:
            try:
                written = os.write(process.stdin, process.stdin_pending)
            except BlockingIOError:
                break
            except OSError:  # the container closed its stdin
                process.stdin_pending.clear()
                self._close_stdin(process)
                return
            del process.stdin_pending[:written]
        if process.stdin is None:
            return
        events = selectors.EVENT_WRITE if process.stdin_pending else 0
        try:
            key = self.selector.get_key(process.stdin)
        except KeyError:
            key = None
        if events and key is None:
            self.selector.register(process.stdin, events, lambda fd, mask, p=process: self._feed_stdin(p))
        elif not events and key is not None:
            self.selector.unregister(process.stdin)

    def _close_stdin(self, process: Process) -> None:
        if process.stdin is not None:
            try:
                self.selector.unregister(process.stdin)
            except KeyError:
                pass
            os.close(process.stdin)
            process.stdin = None
            process.stdin_pending.clear()

    # -- output ----------------------------------------------------------------------------------
    def _output(self, fd: int, mask: int) -> None:
        process = next(p for p in self.processes.values() if fd in p.outputs)
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError as e:  # EIO: the pty's last slave is closed
            if e.errno != errno.EIO:
                raise
            data = b""
        if not data:
            self.selector.unregister(fd)
            del process.outputs[fd]
            if fd != process.master:
                os.close(fd)
            return
        kind = process.outputs[fd]
        if process is self.init and self.log is not None:
            self.log.write("stdout" if kind == protocol.STDOUT else "stderr", data)
        framed = protocol.frame(kind, data)
        for client in list(process.clients):
            if client.streams[kind - 1]:
                self._send(client, framed)

    def _send(self, client: Client, data: bytes) -> None:
        if client.out:
            client.out += data
        else:
            try:
                sent = client.sock.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self._drop(client)
                return
            if sent < len(data):
                client.out += data[sent:]
        if len(client.out) > CLIENT_BUFFER:
            self._drop(client)
        else:
            self._update(client)

    def _flush(self, client: Client) -> None:
        try:
            sent = client.sock.send(client.out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(client)
            return
        del client.out[:sent]
        if not client.out and client.closing:
            self._drop(client)
        else:
            self._update(client)

    def _update(self, client: Client) -> None:
        events = (selectors.EVENT_READ if client.reading else 0) | (selectors.EVENT_WRITE if client.out else 0)
        try:
            if events:
                self.selector.modify(client.sock, events, self._client_event)
            else:
                self.selector.unregister(client.sock)
        except (KeyError, ValueError):
            pass

    def _reply(self, client: Client, answer: dict, close: bool = False) -> None:
        self._send(client, fastjson.dumps(answer).encode() + b"\n")
        if close:
            client.reading = False
            client.closing = True
            if not client.out:
                self._drop(client)
            else:
                self._update(client)

    def _drop(self, client: Client) -> None:
        for process in self.processes.values():
            if client in process.clients:
                process.clients.remove(client)
            if client in process.waiters:
                process.waiters.remove(client)
        try:
            self.selector.unregister(client.sock)
        except (KeyError, ValueError):
            pass
        self.clients.pop(client.sock, None)
        client.sock.close()

    # -- exits -----------------------------------------------------------------------------------
    def _reap(self, fd, mask: int) -> None:
        if fd is not None:
            try:
                while os.read(self._wake_r, 512):
                    pass
            except BlockingIOError:
                pass
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            process = self.by_pid.pop(pid, None)
            if process is not None and process.exit_code is None:
                process.exit_code = os.waitstatus_to_exitcode(status)
                if process.exit_code < 0:
                    process.exit_code = 128 - process.exit_code
                process.exited_at = time.monotonic()
                if process is self.init:
                    process.oom_killed = _oom_count(self.oom_file) > self.oom_before
                    self._close_stdin(process)

    def _maybe_finish(self, process: Process) -> None:
        if process.exit_code is None or process.result is not None:
            return
        draining = process.outputs and time.monotonic() < process.exited_at + DRAIN_SECONDS
        if draining and not (process is not self.init and self.init.result is not None):
            return
        for fd in list(process.outputs):
            self.selector.unregister(fd)
            os.close(fd)
        process.outputs = {}
        if process.master is not None:
            os.close(process.master)
            process.master = None
        self._close_stdin(process)
        process.result = {"exit_code": process.exit_code, "oom_killed": process.oom_killed,
                          "finished_at": rfc3339_nano(time.time_ns())}
        if process is self.init:
            self._finish_container()
        clients, waiters = list(process.clients), list(process.waiters)
        process.clients, process.waiters = [], []
        for client in clients:
            self._send_exit(client, process)
        for waiter in waiters:
            self._reply(waiter, process.result, close=True)

    def _send_exit(self, client: Client, process: Process) -> None:
        self._send(client, protocol.frame(protocol.EXIT, fastjson.dumps(process.result).encode()))
        client.reading = False
        client.closing = True
        if not client.out:
            self._drop(client)

    def _finish_container(self) -> None:
        """exit.json first (what a daemon that was down will read), then the runtime's state."""
        if self.log is not None:
            self.log.close()
            self.log = None
        write_atomic(os.path.join(self.dir, protocol.EXIT_FILE),
                     fastjson.dumps({**self.init.result, "pid": self.init.pid}).encode())
        try:
            self.runtime.run(["delete", "--force", self.options.id])
        except RuntimeError_ as e:
            os.write(2, f"orlop-shim: delete {self.options.id}: {e}\n".encode())
        for process in self.processes.values():
            if process is not self.init and process.exit_code is None:
                process.exit_code, process.exited_at = 137, time.monotonic()

    def finished(self) -> bool:
        """The container is gone and everyone who asked has been told."""
        return self.init.result is not None and not any(
            p.waiters or p.clients for p in self.processes.values()) and not any(
            c.out for c in self.clients.values())

    def close(self) -> None:
        if self.listener is not None:
            self.selector.unregister(self.listener)
            self.listener.close()
            try:
                os.unlink(os.path.join(self.dir, protocol.SOCKET))
            except FileNotFoundError:
                pass


def _oom_counter(pid: int) -> tuple[str | None, int]:
    """The file counting OOM kills in the container's memory cgroup (v1 or v2), and its value now."""
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return None, 0
    path = None
    for line in lines:
        _, controllers, cgroup = line.split(":", 2)
        if "memory" in controllers.split(","):
            path = f"/sys/fs/cgroup/memory{cgroup}/memory.oom_control"
            break
        if controllers == "":
            for base in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
                candidate = f"{base}{cgroup}/memory.events"
                if os.path.exists(candidate):
                    path = candidate
                    break
    return path, _oom_count(path)


def _oom_count(path: str | None) -> int:
    if not path:
        return 0
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("oom_kill "):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0
