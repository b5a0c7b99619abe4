"""`exec`: run another process in a running container's namespaces and cgroup.

The runtime points its children's pid namespace at the container's, forks, and
the child joins the cgroup and every other namespace of the container's init
(user first), applies the process settings and execs. It sends `ready` right
before execve; its close-on-exec end of the channel then reads EOF, which
tells the runtime the exec happened, or an `error` tells why it did not.
"""

from __future__ import annotations

import os

from orlop.linux import syscalls as sc
from orlop.linux.cgroups import load_manager
from orlop.runtime import container, init, process, sync
from orlop.runtime.errors import InvalidState, RuntimeFailure
from orlop.runtime.state import NAMESPACE_KEYS, ContainerState

# Joining order matters: the user namespace first (it grants the rights to join
# the others), the mount namespace last (it changes what paths mean).
_JOIN_ORDER = ("user", "ipc", "uts", "network", "cgroup", "time", "mount")
_FLAGS = {"user": sc.CLONE_NEWUSER, "ipc": sc.CLONE_NEWIPC, "uts": sc.CLONE_NEWUTS, "network": sc.CLONE_NEWNET,
          "cgroup": sc.CLONE_NEWCGROUP, "time": sc.CLONE_NEWTIME, "mount": sc.CLONE_NEWNS, "pid": sc.CLONE_NEWPID}


def build_process(state: ContainerState, process_file: str | None, args: list[str], env: list[str],
                  cwd: str | None, user: str | None, tty: bool, caps: list[str],
                  no_new_privs: bool) -> dict:
    """The process to exec: from -p process.json, or the container's own process with overrides."""
    if process_file:
        from orlop import fastjson

        try:
            spec = fastjson.load_file(process_file)
        except (OSError, ValueError) as e:
            raise RuntimeFailure(f"process file {process_file}: {e}") from None
        if not isinstance(spec, dict) or not spec.get("args"):
            raise RuntimeFailure(f"process file {process_file}: args must be a non-empty list")
        return spec
    if not args:
        raise RuntimeFailure("exec: missing the command to run (pass it after the container id, or use -p)")
    spec = dict(state.config.get("process") or {})
    spec["args"] = args
    spec["terminal"] = tty
    spec["env"] = list(spec.get("env") or []) + env
    if cwd:
        spec["cwd"] = cwd
    if user:
        uid, _, gid = user.partition(":")
        try:
            spec["user"] = {"uid": int(uid), "gid": int(gid or 0)}
        except ValueError:
            raise RuntimeFailure(f"exec: --user {user!r}: expected uid[:gid] as numbers") from None
    if caps:
        capabilities = {k: list(v) for k, v in (spec.get("capabilities") or {}).items()}
        for kind in ("bounding", "effective", "permitted", "ambient", "inheritable"):
            capabilities.setdefault(kind, [])
            capabilities[kind] += [c for c in caps if c not in capabilities[kind]]
        spec["capabilities"] = capabilities
    if no_new_privs:
        spec["noNewPrivileges"] = True
    return spec


def exec_process(state: ContainerState, spec: dict, *, console_fd: int | None, preserve_fds: int) -> int:
    """Start `spec` in the container; returns the new process's host pid once it exec'd."""
    current = container.status(state)
    if current not in (container.RUNNING, container.CREATED):
        raise InvalidState(f"cannot exec in a {current} container")
    process.check_lsm(spec)
    profile = (state.config.get("linux") or {}).get("seccomp")
    seccomp_plan = None
    if profile:
        from orlop.runtime.create import seccomp_cache

        seccomp_plan = process.SeccompPlan(profile, spec, seccomp_cache(state.dir))
    pid_ns = f"/proc/{state.init_process_pid}/ns/pid"
    own_pid_ns = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    parent_sock, child_sock = sync.channel()
    target = os.open(pid_ns, os.O_RDONLY | os.O_CLOEXEC)
    try:
        sc.setns(target, sc.CLONE_NEWPID, pid_ns)
        pid = os.fork()
        if pid == 0:
            _child(state, spec, child_sock, console_fd, preserve_fds, seccomp_plan)
        sc.setns(own_pid_ns, sc.CLONE_NEWPID)
    finally:
        os.close(target)
        os.close(own_pid_ns)
    child_sock.close()
    try:
        sync.expect(parent_sock, sync.READY)
        late = sync.recv(parent_sock)  # EOF once execve closed the child's end
        if late is not None:
            raise sync.InitError(late.get("message", "exec failed"))
    except sync.InitError as e:
        os.waitpid(pid, 0)
        raise RuntimeFailure(str(e)) from None
    except BaseException:
        try:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        raise
    finally:
        parent_sock.close()
    return pid


def _child(state: ContainerState, spec: dict, sock, console_fd: int | None, preserve_fds: int,
           seccomp_plan: process.SeccompPlan | None) -> None:
    try:
        process.reset_signals()
        init.preload_modules(state.config, spec)
        if state.cgroup_paths:
            cgroup = load_manager(state.cgroup_paths)
            cgroup.join_current_thread()
            if cgroup.unified_dir:
                cgroup.add_pid_to_unified(0)
        _join_namespaces(state)
        if spec.get("terminal"):
            from orlop.linux import pty

            if console_fd is None:
                raise RuntimeFailure("cannot allocate tty without a console socket")
            master, slave_path = pty.open_pty("/dev/ptmx")
            size = spec.get("consoleSize")
            if size:  # the client's size before the first program runs, as runc does
                pty.set_window_size(master, size.get("height", 0), size.get("width", 0))
            slave = os.open(slave_path, os.O_RDWR | os.O_NOCTTY)
            pty.send_console_fd_on(console_fd, master, slave_path)
            os.close(master)
            os.close(console_fd)
            pty.set_controlling_terminal(slave)
        process.apply_rlimits(spec)
        if "umask" in (spec.get("user") or {}):
            os.umask(spec["user"]["umask"])
        process.close_extra_fds(3 + preserve_fds, keep=(sock.fileno(),))
        if seccomp_plan and seccomp_plan.early:
            seccomp_plan.install(state.oci_state("running"))
        process.switch_user(spec)
        process.chdir_cwd(spec, create=False)
        env = spec.get("env") or []
        executable = process.find_executable(spec["args"][0], env)
        process.apply_lsm(spec)
        if seccomp_plan and not seccomp_plan.early:
            sync.send(sock, sync.READY)
            seccomp_plan.install(state.oci_state("running"))
        else:
            sync.send(sock, sync.READY)
        os.execve(executable, spec["args"], process.env_dict(env, (spec.get("user") or {}).get("uid", 0)))
    except BaseException as e:  # noqa: BLE001 - everything goes back to the runtime
        try:
            sync.send(sock, sync.ERROR, message=init.describe(e))
        finally:
            os._exit(127)


def _join_namespaces(state: ContainerState) -> None:
    pid = state.init_process_pid
    own_user = os.stat("/proc/self/ns/user").st_ino
    for kind in _JOIN_ORDER:
        name = NAMESPACE_KEYS[kind][1]
        path = f"/proc/{pid}/ns/{name}"
        try:
            target = os.stat(path).st_ino
        except FileNotFoundError:
            continue
        if os.stat(f"/proc/self/ns/{name}").st_ino == target:
            continue  # shared with the host: already in it
        if kind == "user" and target == own_user:
            continue
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            sc.setns(fd, _FLAGS[kind], path)
        finally:
            os.close(fd)
