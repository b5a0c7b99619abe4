"""The container's init: the forked child that becomes the container's process.

It enters its namespaces and cgroup, builds the root filesystem, reports
`ready` to the runtime (see sync.py for the whole ladder), blocks on exec.fifo
until `start`, and execs the user's program. It never returns: on any error it
sends the message to the runtime and exits.
"""

from __future__ import annotations

import os

from orlop.linux import syscalls as sc
from orlop.runtime import hooks, process, sync
from orlop.runtime.rootfs import RootfsBuilder

# Namespace kinds that unshare() applies to the caller itself (pid and time only
# apply to children, and user is handled first, on its own).
SELF_NAMESPACES = {
    "mount": sc.CLONE_NEWNS, "uts": sc.CLONE_NEWUTS, "ipc": sc.CLONE_NEWIPC, "network": sc.CLONE_NEWNET,
}
CGROUP_NAMESPACE = {"cgroup": sc.CLONE_NEWCGROUP}  # only once the runtime has put us in our cgroup
CHILD_NAMESPACES = {"pid": sc.CLONE_NEWPID, "time": sc.CLONE_NEWTIME}


class InitContext:
    """What the runtime hands its forked child (memory shared by fork, nothing serialised)."""

    __slots__ = ("spec", "bundle", "rootfs", "sock", "fifo_fd", "console_fd", "preserve_fds", "no_pivot",
                 "cgroup", "namespaces", "state", "in_cgroup", "seccomp")

    def __init__(self, **fields) -> None:
        for name in self.__slots__:
            setattr(self, name, fields.get(name))

    def is_new(self, kind: str) -> bool:
        return kind in self.namespaces and not self.namespaces[kind]

    def await_cgroup(self) -> None:
        """Wait until the runtime has moved us into our cgroup, then enter the cgroup ns."""
        if not self.in_cgroup:
            sync.expect(self.sock, sync.JOINED)
            join_and_unshare(self.namespaces, CGROUP_NAMESPACE)
            self.in_cgroup = True


def join_and_unshare(namespaces: dict[str, str | None], kinds: dict[str, int]) -> None:
    """setns into the namespaces given by path, then unshare the new ones, of `kinds`."""
    new_flags = 0
    for kind, flag in kinds.items():
        if kind not in namespaces:
            continue
        path = namespaces[kind]
        if path:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                sc.setns(fd, flag, path)
            finally:
                os.close(fd)
        else:
            new_flags |= flag
    if new_flags:
        sc.unshare(new_flags)


def intermediate_main(ctx: InitContext) -> None:
    """With a user namespace: enter it, make every other namespace owned by it, fork
    the init into the new pid namespace, report its pid, and exit."""
    try:
        ctx.cgroup.join_current_thread()
        user_path = ctx.namespaces["user"]
        join_and_unshare({"user": user_path}, {"user": sc.CLONE_NEWUSER})
        if not user_path:
            sync.send(ctx.sock, sync.USERNS)
            ctx.await_cgroup()  # the runtime sent `joined` before it saw `userns`
            sync.expect(ctx.sock, sync.CONTINUE)
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
        join_and_unshare(ctx.namespaces, SELF_NAMESPACES | CHILD_NAMESPACES)
        ctx.await_cgroup()
        pid = os.fork()
        if pid == 0:
            init_main(ctx, in_namespaces=True)
        sync.send(ctx.sock, sync.PID, pid=pid)
        os._exit(0)
    except BaseException as e:  # noqa: BLE001 - report anything to the runtime
        _fail(ctx, e)


def init_main(ctx: InitContext, in_namespaces: bool = False) -> None:
    try:
        _setup_and_exec(ctx, in_namespaces)
    except BaseException as e:  # noqa: BLE001
        _fail(ctx, e)


def describe(error: BaseException) -> str:
    """An exception as one line, without Python's "[Errno N]" prefix."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror + (f": {error.filename}" if error.filename else "")
    return str(error) or type(error).__name__


def _fail(ctx: InitContext, error: BaseException) -> None:
    """Report to the runtime, or, once it stopped listening (after `ready`), on the
    container's stderr, which is all that is left."""
    try:
        if ctx.sock.fileno() >= 0:
            sync.send(ctx.sock, sync.ERROR, message=describe(error))
        else:
            os.write(2, f"orlop-runtime: container init: {describe(error)}\n".encode())
    finally:
        os._exit(1)


def _setup_and_exec(ctx: InitContext, in_namespaces: bool) -> None:
    spec, proc_spec = ctx.spec, ctx.spec["process"]
    process.reset_signals()
    if not in_namespaces:
        ctx.cgroup.join_current_thread()
        join_and_unshare(ctx.namespaces, SELF_NAMESPACES)
    if hooks.has_hooks(spec, *hooks.RUNTIME_CREATE_HOOKS):
        ctx.await_cgroup()
        sync.send(ctx.sock, sync.HOOKS)
        sync.expect(ctx.sock, sync.CONTINUE)

    fs = RootfsBuilder(spec, ctx.rootfs, ctx.bundle, new_netns=ctx.is_new("network"),
                       new_cgroupns=ctx.is_new("cgroup"), new_userns="user" in ctx.namespaces,
                       cgroup_paths=ctx.cgroup.paths, before_cgroup_mount=ctx.await_cgroup)
    preload_modules(spec, proc_spec)
    fs.prepare_root()
    fs.mount_all()
    fs.create_devices()
    if hooks.has_hooks(spec, "createContainer", "startContainer"):
        ctx.state["pid"] = _host_pid()
    hooks.run_hooks(spec, "createContainer", ctx.state)
    cwd_in_rootfs = fs.rootfs + (proc_spec.get("cwd") or "/")
    if not os.path.isdir(cwd_in_rootfs):
        os.makedirs(cwd_in_rootfs, 0o755, exist_ok=True)
    fs.pivot(ctx.no_pivot)
    fs.rootfs = ""  # from here on the container's / is the root

    if spec.get("hostname") and "uts" in ctx.namespaces:  # new, or joined (a pod's) as runc does
        sc.sethostname(spec["hostname"])
    if spec.get("domainname") and "uts" in ctx.namespaces:
        sc.setdomainname(spec["domainname"])
    for key, value in ((spec.get("linux") or {}).get("sysctl") or {}).items():
        # "net.ipv4.ip_forward", or with slashes when a component holds a dot (eth0.100)
        with open("/proc/sys/" + (key if "/" in key else key.replace(".", "/")), "w") as f:
            f.write(value)
    if proc_spec.get("terminal"):
        _setup_terminal(ctx, fs)
    fs.finalize()
    ctx.await_cgroup()

    process.apply_rlimits(proc_spec)
    os.umask(proc_spec.get("user", {}).get("umask", 0o022))
    keep = (ctx.sock.fileno(), ctx.fifo_fd) + ((ctx.seccomp.listener_fd,) if ctx.seccomp else ())
    process.close_extra_fds(3 + ctx.preserve_fds, keep=keep)
    if ctx.seccomp and ctx.seccomp.early:
        ctx.seccomp.install(ctx.state)
    process.switch_user(proc_spec)
    process.chdir_cwd(proc_spec, create=False)
    env = proc_spec.get("env") or []
    executable = process.find_executable(proc_spec["args"][0], env)

    sync.send(ctx.sock, sync.READY)
    ctx.sock.close()
    _wait_for_start(ctx.fifo_fd)
    hooks.run_hooks(spec, "startContainer", ctx.state)
    process.apply_lsm(proc_spec)
    if ctx.seccomp and not ctx.seccomp.early:
        ctx.seccomp.install(ctx.state)
    os.execve(executable, proc_spec["args"], process.env_dict(env, (proc_spec.get("user") or {}).get("uid", 0)))


def preload_modules(spec: dict, proc_spec: dict) -> None:
    """Import now what is used after pivot_root (or setns into the container's mount
    namespace), when orlop's own files are no longer reachable."""
    if proc_spec.get("terminal"):
        import orlop.linux.pty  # noqa: F401
    if (spec.get("linux") or {}).get("seccomp"):
        import struct  # noqa: F401 - for the notify fd

        import orlop.linux.seccomp  # noqa: F401
    if hooks.has_hooks(spec, "startContainer"):
        import subprocess  # noqa: F401


def _setup_terminal(ctx: InitContext, fs: RootfsBuilder) -> None:
    from orlop.linux import pty

    master, slave_path = pty.open_pty("/dev/ptmx")
    size = ctx.spec["process"].get("consoleSize")
    if size:
        pty.set_window_size(master, size.get("height", 0), size.get("width", 0))
    slave = os.open(slave_path, os.O_RDWR | os.O_NOCTTY)
    fs.bind_console(slave_path)
    pty.send_console_fd_on(ctx.console_fd, master, slave_path)
    os.close(master)
    os.close(ctx.console_fd)
    pty.set_controlling_terminal(slave)


def _wait_for_start(fifo_fd: int) -> None:
    """Block until `start` opens exec.fifo for reading, then tell it we go."""
    fd = os.open(f"/proc/self/fd/{fifo_fd}", os.O_WRONLY | os.O_CLOEXEC)
    os.write(fd, b"0")
    os.close(fd)
    os.close(fifo_fd)


def _host_pid() -> int:
    """Our pid as the runtime's namespace sees it (hooks get that one), read from the
    host's /proc before pivot_root."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("NSpid:"):
                return int(line.split()[1])
    return os.getpid()
