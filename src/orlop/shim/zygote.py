"""orlop-shim's zygote: one long-lived process per exec root that forks the shims.

    orlop-shim --zygote <exec-root>/shim-zygote.sock

Memory is the point. A shim started afresh loads the interpreter and its modules and keeps
a private copy of all that heap (~3.5 MiB per container). The zygote imports what a shim
needs once, rehearses a shim's first steps (server.rehearse: the interpreter's lookup caches,
specialised bytecode and the classes' shared keys get made here rather than in every shim),
collects and freezes its objects (gc.freeze: a shim's collections never walk them) and forks
the shims, which share its pages copy-on-write and pay only for the pages they write
(~1 MiB: CPython writes to every object it touches, if only to its reference count).

orlopd starts it on demand (orlop.containers.shim_client), and again whenever it is gone: the
launched process forks and exits; the zygote starts a new session, takes `<socket>.lock`
(one zygote per socket: a second one answers {"busy": true} and exits), listens, prints
{"zygote": <pid>} and serves, its stdio on /dev/null and `<exec-root>/shim-zygote.log`,
its command line rewritten to `orlop shim zygote <socket>` (a shim's to `orlop-shim
<state-dir> --id <id>`). It goes when its socket is removed (with the exec root).

One request per connection, one JSON line: {"argv": [orlop-shim's options, as on its
command line], "command": [the launcher the client would run], "cwd": …, "env": {…},
"umask": N}. The zygote accepts, forks and waits for that child, nothing more: a page the
zygote writes is copied for it, and every shim forked before keeps the old copy for itself
alone. The child reads the request, answers {"forking": true} (a client that gets no such
line may ask again: its request was not taken) and forks the shim, then exits. The shim,
reparented away from the zygote and from orlopd (neither one's death touches it), holding
none of the zygote's descriptors, does what `orlop-shim OPTIONS` does (main._serve) with
the client's directory and umask, and its environment for the runtime, and writes the same
answer onto the connection: {"pid", "shim_pid"} or {"error"}; a shim that dies while
creating closes it without one.

A zygote asked by another installation (another launcher), or whose code changed on disk
since it started, answers {"stale": true}, gives up its socket and lock and exits: the client
starts a fresh one. Single-threaded; a forked child never returns into the zygote's loop.
"""

from __future__ import annotations

import os
import sys

SOCKET = "shim-zygote.sock"
REQUEST_LIMIT = 1 << 20
REHEARSAL_RUNTIME = "/bin/echo"  # server.rehearse's stand-in for the runtime
RETIRE = 3  # a child's exit status: the zygote is stale and goes
FORKING = b'{"forking": true}\n'  # the request is taken: the shim's answer follows
CHECK_SECONDS = 2.0  # how often the zygote makes sure its socket is still there (else it goes)


def launch_command() -> list[str]:
    """How orlop-shim is started: the lean launcher beside this interpreter (scripts/setup
    writes it), else `-c`. orlopd and the zygote compute it alike, so a zygote can tell a
    client of another installation."""
    launcher = os.path.join(os.path.dirname(sys.executable), "orlop-shim")
    if os.path.exists(launcher):
        return [launcher]
    return [sys.executable, "-c", "from orlop.shim.main import entry; entry()"]


def entry(path: str) -> None:
    """The launched process: fork the zygote (which reports on our stdout) and exit."""
    if os.fork():
        os._exit(0)
    try:
        code = _run(path)
    except BaseException as e:  # noqa: BLE001 - reported to the starter (or the log), then gone
        _report({"error": f"orlop-shim zygote: {type(e).__name__}: {e}"})
        code = 1
    os._exit(code)


def _report(answer: dict) -> None:
    from orlop.shim.protocol import encode

    try:
        os.write(1, encode(answer) + b"\n")
    except OSError:
        pass


def _run(path: str) -> int:
    import _socket
    import fcntl
    import gc

    os.setsid()
    os.chdir("/")
    os.closerange(3, os.sysconf("SC_OPEN_MAX"))  # whatever its starter let it inherit
    lock = os.open(path + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        _report({"busy": True})
        return 0
    import orlop.shim.main  # noqa: F401 - everything a shim imports, and nothing more

    listener = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    if os.path.lexists(path):
        os.unlink(path)
    listener.bind(path)
    os.chmod(path, 0o600)
    listener.listen(128)
    inode = os.stat(path).st_ino
    base = os.path.splitext(path)[0]
    null = os.open(os.devnull, os.O_RDWR)
    log = os.open(base + ".log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    starter = os.dup(1)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(null)
    os.close(log)
    _rehearse(base + ".rehearsal")
    set_title(f"orlop shim zygote {path}")
    zygote = Zygote(path, inode, listener, lock)
    gc.collect()
    gc.freeze()
    os.dup2(starter, 1)
    _report({"zygote": os.getpid()})
    os.dup2(2, 1)
    os.close(starter)
    zygote.serve()
    return 0


def _rehearse(directory: str) -> None:
    """server.rehearse, where it can be had: without it, shims only cost more."""
    from orlop.shim.server import rehearse

    if os.path.exists(REHEARSAL_RUNTIME):
        try:
            rehearse(directory, REHEARSAL_RUNTIME)
        except Exception as e:  # noqa: BLE001
            os.write(2, f"orlop-shim zygote: rehearsal: {type(e).__name__}: {e}\n".encode())


def set_title(title: str) -> None:
    """Rewrite this process's command line in place (what ps and /proc/PID/cmdline show), as
    setproctitle does, within the room of the original one (the rest is NUL): a shim forked
    from the zygote would otherwise show the zygote's."""
    try:
        fd = os.open("/proc/self/stat", os.O_RDONLY | os.O_CLOEXEC)
        try:
            stat = os.read(fd, 4096)
        finally:
            os.close(fd)
        fields = stat[stat.rindex(b")") + 2:].split()  # from field 3 (state) on
        start, end = int(fields[48 - 3]), int(fields[49 - 3])  # arg_start, arg_end
        text = title.encode()[:end - start - 1]
        fd = os.open("/proc/self/mem", os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.pwrite(fd, text + b"\0" * (end - start - len(text)), start)
        finally:
            os.close(fd)
    except (OSError, ValueError, IndexError):
        pass  # only cosmetic


def _loaded_files() -> list[str]:
    """What the running code was loaded from: orlop's modules, the launcher, the interpreter."""
    files = [getattr(module, "__file__", None) for name, module in sorted(sys.modules.items())
             if name == "orlop" or name.startswith("orlop.")]
    launcher = sys.argv[0] if os.path.isfile(sys.argv[0]) else None
    return [f for f in [*files, launcher, sys.executable] if f]


def _stat(path: str) -> tuple:
    try:
        st = os.stat(path)
    except OSError:
        return (path,)
    return (path, st.st_ino, st.st_size, st.st_mtime_ns)


class Zygote:
    def __init__(self, path: str, inode: int, listener, lock: int) -> None:
        self.path = path
        self.inode = inode
        self.listener = listener
        self.lock = lock
        self.command = launch_command()
        self.files = _loaded_files()
        self.sources = [_stat(f) for f in self.files]

    def serve(self) -> None:
        """Accept, fork, wait for the child (it exits once it has forked the shim); go when the
        socket is no longer ours (removed with the exec root, or taken over)."""
        import select

        self.listener.setblocking(False)
        poller = select.poll()
        poller.register(self.listener.fileno(), select.POLLIN)
        poll, accept, fork, close, waitpid = poller.poll, self.listener._accept, os.fork, os.close, os.waitpid
        check = int(CHECK_SECONDS * 1000)
        while True:
            if not poll(check):
                if not self.ours():
                    self.listener.close()
                    return
                continue
            try:
                conn, _ = accept()
            except (BlockingIOError, ConnectionAbortedError):
                continue
            try:
                pid = fork()
            except OSError as e:  # no process to be had: this request fails, not the zygote
                self.refuse(conn, f"orlop-shim zygote: fork: {e.strerror}")
                continue
            if pid == 0:
                code = 1
                try:
                    code = self.child(conn)
                except BaseException:  # noqa: BLE001 - into the shim's log (or the zygote's), as a shim's
                    import traceback

                    traceback.print_exc()
                    sys.stderr.flush()
                finally:
                    os._exit(code)
            close(conn)
            if waitpid(pid, 0)[1] == RETIRE << 8:
                self.retire()
                return

    def ours(self) -> bool:
        try:
            return os.stat(self.path).st_ino == self.inode
        except OSError:
            return False

    def refuse(self, conn: int, message: str) -> None:
        from orlop.shim.protocol import encode

        try:
            os.write(conn, FORKING + encode({"error": message}) + b"\n")
        except OSError:
            pass
        os.close(conn)

    def retire(self) -> None:
        """Give the socket (if it is still ours) and the lock up to a fresh zygote."""
        if self.ours():
            try:
                os.unlink(self.path)
            except OSError:
                pass
        self.listener.close()
        os.close(self.lock)

    def child(self, fd: int) -> int:
        """In the forked child: read the request, answer it or fork the shim; exit at once."""
        import _socket

        from orlop import fastjson
        from orlop.shim.main import _serve, parse
        from orlop.shim.protocol import encode
        from orlop.shim.server import Options

        os.close(self.listener.fileno())  # nothing of the zygote's stays open in a shim
        os.close(self.lock)
        conn = _socket.socket(fileno=fd)
        conn.settimeout(10)
        data = b""
        while b"\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return 0  # a client making sure that the zygote is there
            data += chunk
            if len(data) > REQUEST_LIMIT:
                raise ValueError("request too large")
        request = fastjson.loads(data.partition(b"\n")[0].decode())
        if request.get("command") != self.command or [_stat(f) for f in self.files] != self.sources:
            if self.ours():  # no client may reach this zygote any more
                os.unlink(self.path)
            conn.sendall(b'{"stale": true}\n')
            return RETIRE
        try:
            options = Options(**parse([str(arg) for arg in request["argv"]]))
        except (SystemExit, KeyError, TypeError, ValueError) as e:
            conn.sendall(encode({"error": str(e)}) + b"\n")
            return 1
        env = request.get("env")
        env = {str(k): str(v) for k, v in env.items()} if isinstance(env, dict) else None
        cwd = str(request.get("cwd") or "/")
        umask = request.get("umask")
        conn.setblocking(True)
        conn.sendall(FORKING)
        try:
            if os.fork():
                return 0
        except OSError as e:
            conn.sendall(encode({"error": f"orlop-shim zygote: fork: {e.strerror}"}) + b"\n")
            return 1
        # The shim, reparented once its parent has exited.
        set_title(f"orlop-shim {options.state_dir} --id {options.id}")
        answer = conn.detach()
        if isinstance(umask, int):
            os.umask(umask)
        try:
            os.chdir(cwd)
        except OSError as e:
            os.write(answer, encode({"error": f"orlop-shim: {cwd}: {e.strerror}"}) + b"\n")
            return 1
        return _serve(options, answer, env)
