"""orlop-shim's event loop: one container, its execs, their stdio, logs and exits.

The shim is the container's parent (a child subreaper: the runtime's init child
is reparented to it when the runtime command exits), so it alone can collect the
exit status. It holds the stdio pipes (or the pty master), copies output to the
json-file log and to attached clients, feeds stdin, and answers the daemon's
requests on a unix socket (see protocol.py). When the init process has exited
and its output is drained, the exit is written to exit.json (atomically, before
anything else, so a daemon that was down finds it), the runtime's state is
deleted, waiters are told, and the shim exits.

Single-threaded, epoll + non-blocking fds; SIGCHLD arrives through the signal
wakeup fd.

Memory: shims are forked from a zygote (zygote.py) and pay for every page they
write, and CPython writes to every object it touches (reference counts). So the
shim touches few objects: the C layers of the standard library (`_socket`,
`_signal`, `select.epoll`, os-level file I/O, the `_json` encoder) rather than
their Python wrappers (socket.socket, signal.signal and selectors go through enum
and collections.abc machinery; a text-mode open() through io and codecs).
"""

from __future__ import annotations

import _signal
import _socket
import errno
import fcntl
import os
import select
import struct
import termios
import time

from orlop import fastjson
from orlop.fsutil import write_atomic
from orlop.shim import oom, protocol
from orlop.shim.logs import JsonFileLog, rfc3339_nano
from orlop.shim.runtime import Runtime, RuntimeError_

DRAIN_SECONDS = 2.0   # after an exit, how long output may still trickle in
FINISHED_EXECS = 64  # results of ended execs kept for a late `wait` (their processes are let go)
CLIENT_BUFFER = 4 << 20  # a client this far behind is dropped, never the container
READ, WRITE = select.EPOLLIN, select.EPOLLOUT
MSG_CMSG_CLOEXEC = 0x40000000


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
        self.oom_kills = 0  # OOM kills in the container's memory cgroup during the run (init only)
        self.result: dict | None = None  # set once exited and drained


class Client:
    """One connection on the control socket."""

    def __init__(self, sock: _socket.socket) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.inbuf = bytearray()
        self.out = bytearray()
        self.process: Process | None = None  # attached to
        self.streams: tuple[bool, bool] = (True, True)  # stdout, stderr wanted
        self.stdin = False
        self.stdin_once = False
        self.reading = True
        self.closing = False  # close once `out` is flushed


class Shim:
    def __init__(self, options: Options, env: dict | None = None) -> None:
        self.options = options
        self.dir = options.state_dir
        self.runtime = Runtime(options.runtime, options.runtime_root, options.state_dir, env)
        self.poller = select.epoll()
        self.handlers: dict[int, object] = {}  # fd -> handler(fd, READ|WRITE)
        self.init = Process("", options.tty)
        self.processes: dict[str, Process] = {"": self.init}
        self.finished: dict[str, dict] = {}  # exec key -> result, oldest first, for execs let go
        self.by_pid: dict[int, Process] = {}
        self.log: JsonFileLog | None = None
        self.oom_file: str | None = None
        self.oom_before = 0
        self.clients: dict[int, Client] = {}
        self.listener: _socket.socket | None = None
        self._wake_r = -1

    def _path(self, name: str) -> str:
        return f"{self.dir}/{name}"

    # -- the poller ------------------------------------------------------------------------------
    def _watch(self, fd: int, events: int, handler) -> None:
        """Watch `fd` for `events` (READ|WRITE) with `handler`; 0 stops watching it."""
        if not events:
            if self.handlers.pop(fd, None) is not None:
                try:
                    self.poller.unregister(fd)
                except OSError:
                    pass
        elif fd in self.handlers:
            self.poller.modify(fd, events)
            self.handlers[fd] = handler
        else:
            self.poller.register(fd, events)
            self.handlers[fd] = handler

    # -- set-up ----------------------------------------------------------------------------------
    def listen(self) -> None:
        path = self._path(protocol.SOCKET)
        _unlink(path)
        self.listener = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        self.listener.bind(path)
        os.chmod(path, 0o600)
        self.listener.listen(64)
        self.listener.setblocking(False)
        self._watch(self.listener.fileno(), READ, self._accept)
        self._wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        _signal.set_wakeup_fd(wake_w)
        _signal.signal(_signal.SIGCHLD, _ignore)
        self._watch(self._wake_r, READ, self._reap)

    def create(self) -> int:
        """`runtime create` with the stdio the shim holds; returns the container's host PID."""
        o = self.options
        if o.log_path:
            self.log = JsonFileLog(o.log_path, o.log_max_size, o.log_max_file)
        pid_file = self._path(protocol.INIT_PID_FILE)
        args = ["create", "--bundle", o.bundle, "--pid-file", pid_file]
        self._spawn(self.init, args, o.id, stdin=o.stdin)
        self.init.pid = int(_read(pid_file))
        self.by_pid[self.init.pid] = self.init
        self.oom_file = oom.counter_file(self.init.pid)
        self.oom_before = oom.kills(self.oom_file)
        return self.init.pid

    def _spawn(self, process: Process, args: list[str], container_id: str, *, stdin: bool) -> None:
        """Run a runtime command that starts `process` (create, or exec --detach) wired to new stdio."""
        child_fds: list[int] = []
        console = None
        console_path = self._path("console.sock")
        try:
            if process.tty:
                console = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
                _unlink(console_path)
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
                conn = _socket.socket(fileno=console._accept()[0])
                try:
                    fds = _recv_fds(conn)
                finally:
                    conn.close()
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
                os.unlink(console_path)
        for fd in process.outputs:
            os.set_blocking(fd, False)
            self._watch(fd, READ, self._output)
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
            for fd, events in self.poller.poll(-1 if timeout is None else timeout):
                handler = self.handlers.get(fd)
                if handler is not None:  # (an earlier handler may have stopped watching it)
                    # hang-ups and errors are reported to both sides, as selectors does
                    handler(fd, (READ if events & ~WRITE else 0) | (WRITE if events & ~READ else 0))
            for process in list(self.processes.values()):
                self._maybe_finish(process)

    def _accept(self, fd: int, mask: int) -> None:
        try:
            conn, _ = self.listener._accept()
        except (BlockingIOError, InterruptedError):
            return
        sock = _socket.socket(fileno=conn)
        sock.setblocking(False)
        self.clients[conn] = Client(sock)
        self._watch(conn, READ, self._client_event)

    def _client_event(self, fd: int, mask: int) -> None:
        client = self.clients.get(fd)
        if client is None:
            return
        if mask & WRITE:
            self._flush(client)
        if mask & READ and client.reading and client.fd in self.clients:
            try:
                data = client.sock.recv(65536)
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
            request = fastjson.loads(line.decode())
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
            result = self.finished.get(key)
            if result is None:
                raise KeyError(f"no such exec: {key}")
            process = Process(key, False)  # an ended exec that was let go: only its result is left
            process.exit_code, process.result = result["exit_code"], result
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
        process = self._process(request)
        if process.master is None:
            raise ValueError("the process has no terminal")
        fcntl.ioctl(process.master, termios.TIOCSWINSZ,
                    struct.pack("HHHH", int(request["height"]), int(request["width"]), 0, 0))
        self._reply(client, {"ok": True}, close=True)

    def _op_close_stdin(self, client: Client, request: dict, rest: bytes) -> None:
        self._close_stdin(self._process(request))
        self._reply(client, {"ok": True}, close=True)

    def _op_kill(self, client: Client, request: dict, rest: bytes) -> None:
        """Signal an exec (or the init) that has not been reaped: its PID cannot have been
        reused, since this process, its parent, has not collected it yet."""
        process = self._process(request)
        if process.exit_code is None and process.pid:
            try:
                os.kill(process.pid, int(request.get("signal") or 9))
            except ProcessLookupError:
                pass
        self._reply(client, {"ok": True}, close=True)

    def _op_attach(self, client: Client, request: dict, rest: bytes) -> None:
        process = self._process(request)
        self._reply(client, {"ok": True, "tty": process.tty})
        self._attach(client, process, request, rest)

    def _op_exec(self, client: Client, request: dict, rest: bytes) -> None:
        key = request["exec"]
        if not key or key in self.processes or key in self.finished:
            raise ValueError(f"exec id {key!r} is empty or in use")
        if self.init.exit_code is not None:
            raise ValueError(f"container {self.options.id} is not running")
        spec = request["process"]
        process = Process(key, bool(spec.get("terminal")))
        spec_path = self._path(f"exec-{key}.json")
        pid_file = self._path(f"exec-{key}.pid")
        write_atomic(spec_path, protocol.encode(spec))
        try:
            self._spawn(process, ["exec", "--detach", "--process", spec_path, "--pid-file", pid_file],
                        self.options.id, stdin=bool(request.get("stdin")))
            process.pid = int(_read(pid_file))
        finally:
            for path in (spec_path, pid_file):
                _unlink(path)
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
        if not process.stdin_pending:
            self._watch(process.stdin, 0, None)
        elif process.stdin not in self.handlers:
            self._watch(process.stdin, WRITE, lambda fd, mask, p=process: self._feed_stdin(p))

    def _close_stdin(self, process: Process) -> None:
        if process.stdin is not None:
            self._watch(process.stdin, 0, None)
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
            self._watch(fd, 0, None)
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
        if client.fd in self.clients:  # not dropped
            self._watch(client.fd, (READ if client.reading else 0) | (WRITE if client.out else 0),
                        self._client_event)

    def _reply(self, client: Client, answer: dict, close: bool = False) -> None:
        self._send(client, protocol.encode(answer) + b"\n")
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
        if self.clients.pop(client.fd, None) is not None:
            self._watch(client.fd, 0, None)
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
                    process.oom_kills = max(oom.kills(self.oom_file) - self.oom_before, 0)
                    process.oom_killed = process.oom_kills > 0
                    self._close_stdin(process)

    def _maybe_finish(self, process: Process) -> None:
        if process.exit_code is None or process.result is not None:
            return
        draining = process.outputs and time.monotonic() < process.exited_at + DRAIN_SECONDS
        if draining and not (process is not self.init and self.init.result is not None):
            return
        for fd in list(process.outputs):
            self._watch(fd, 0, None)
            os.close(fd)
        process.outputs = {}
        if process.master is not None:
            os.close(process.master)
            process.master = None
        self._close_stdin(process)
        process.result = {"exit_code": process.exit_code, "oom_killed": process.oom_killed,
                          "finished_at": rfc3339_nano(time.time_ns())}
        if process is self.init:
            process.result["oom_kills"] = process.oom_kills
        if process is self.init:
            self._finish_container()
        clients, waiters = list(process.clients), list(process.waiters)
        process.clients, process.waiters = [], []
        for client in clients:
            self._send_exit(client, process)
        for waiter in waiters:
            self._reply(waiter, process.result, close=True)
        if process is not self.init:  # let it go (health probes make many), keep its result
            del self.processes[process.key]
            self.finished[process.key] = process.result
            if len(self.finished) > FINISHED_EXECS:
                del self.finished[next(iter(self.finished))]

    def _send_exit(self, client: Client, process: Process) -> None:
        self._send(client, protocol.frame(protocol.EXIT, protocol.encode(process.result)))
        client.reading = False
        client.closing = True
        if not client.out:
            self._drop(client)

    def _finish_container(self) -> None:
        """exit.json first (what a daemon that was down will read), then the runtime's state."""
        if self.log is not None:
            self.log.close()
            self.log = None
        write_atomic(self._path(protocol.EXIT_FILE), protocol.encode({**self.init.result, "pid": self.init.pid}))
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
            self._watch(self.listener.fileno(), 0, None)
            self.listener.close()
            _unlink(self._path(protocol.SOCKET))


def rehearse(directory: str, runtime: str = "/bin/echo", times: int = 10) -> None:
    """A shim's first steps, `times` over, in this process, in `directory` (made and emptied
    here), against a `runtime` that only prints its arguments: create with the log, then an
    attach, a wait and a state request served, the output logged and sent. The zygote runs it
    before it forks any shim: its interpreter's caches (attribute lookups), specialised bytecode
    and the classes' shared attribute keys are then made, and its shims, which write every page
    they change, do not write those (a quarter of their memory). The signal state is restored."""
    os.makedirs(directory, 0o700, exist_ok=True)
    pid_file = f"{directory}/{protocol.INIT_PID_FILE}"
    try:
        for _ in range(times):
            shim = Shim(Options(id="rehearsal", bundle=directory, state_dir=directory, runtime=runtime,
                                runtime_root=directory, log_path=f"{directory}/log"), dict(os.environ))
            try:
                shim.listen()
                with open(pid_file, "w") as f:  # what `create --pid-file` would have written
                    f.write(str(os.getpid()))
                shim.create()
                protocol.encode({"pid": shim.init.pid, "shim_pid": os.getpid()})
                clients = []
                for request in ({"op": "attach", "stdout": True, "stderr": True}, {"op": "wait"}, {"op": "state"}):
                    client = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
                    client.connect(shim._path(protocol.SOCKET))
                    client.sendall(protocol.encode(request) + b"\n")
                    clients.append(client)
                deadline = time.monotonic() + 2
                init, state = shim.init, clients[-1]
                while init.outputs or not (init.clients and init.waiters and select.select([state], [], [], 0)[0]):
                    if time.monotonic() > deadline:
                        raise TimeoutError("the rehearsal's requests were not served")
                    for fd, events in shim.poller.poll(0.1):
                        handler = shim.handlers.get(fd)
                        if handler is not None:
                            handler(fd, (READ if events & ~WRITE else 0) | (WRITE if events & ~READ else 0))
                    shim._maybe_finish(init)
                for client in clients:
                    client.close()
                for fd, _ in shim.poller.poll(0):
                    handler = shim.handlers.get(fd)
                    if handler is not None:
                        handler(fd, READ)
            finally:
                for fd in list(shim.init.outputs):
                    os.close(fd)
                for client in list(shim.clients.values()):
                    client.sock.close()
                if shim.init.stdin is not None:
                    os.close(shim.init.stdin)
                if shim.log is not None:
                    shim.log.close()
                shim.close()
                shim.poller.close()
                if shim._wake_r >= 0:
                    os.close(shim._wake_r)
                    os.close(_signal.set_wakeup_fd(-1))
                _signal.signal(_signal.SIGCHLD, _signal.SIG_DFL)
    finally:
        for name in os.listdir(directory):
            os.unlink(f"{directory}/{name}")
        os.rmdir(directory)


def _ignore(signum, frame) -> None:
    """SIGCHLD's handler: it only has to interrupt the poll (through the wakeup fd)."""


def _unlink(path: str) -> None:
    if os.access(path, os.F_OK, follow_symlinks=False):  # (no exception in the usual case: they cost)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def _read(path: str) -> bytes:
    """A small file's content (no io/codecs layers)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _recv_fds(conn: _socket.socket) -> list[int]:
    """The descriptors (at most one is asked for) the runtime sent on the console socket."""
    _, ancdata, _, _ = conn.recvmsg(16, _socket.CMSG_LEN(4), MSG_CMSG_CLOEXEC)
    fds = []
    for level, kind, data in ancdata:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            fds += struct.unpack(f"{len(data) // 4}i", data[:len(data) // 4 * 4])
    return fds
