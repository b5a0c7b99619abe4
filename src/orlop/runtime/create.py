"""`create`: from a bundle to a container whose init waits on exec.fifo.

This is the runtime's (parent's) side of the set-up; init.py is the child's.
Until the init reports `ready` nothing is final: any failure kills the child
and removes the cgroup and the state directory, so a refused bundle leaves
nothing behind.
"""

from __future__ import annotations

import os

from orlop import fastjson
from orlop.linux import proc
from orlop.linux import syscalls as sc
from orlop.linux.cgroups import NoCgroup, open_manager
from orlop.oci.runtime_spec import ConfigError, validate
from orlop.runtime import hooks, init, process, sync
from orlop.runtime.errors import ContainerExists, RuntimeFailure
from orlop.runtime.state import EXEC_FIFO, NAMESPACE_KEYS, ContainerState, validate_id, write_atomic


class CreateOptions:
    __slots__ = ("pid_file", "console_socket", "console_fd", "no_pivot", "preserve_fds", "systemd_cgroup",
                 "own_console", "console_receiver")

    def __init__(self, pid_file: str | None = None, console_socket: str | None = None,
                 console_fd: int | None = None, no_pivot: bool = False, preserve_fds: int = 0,
                 systemd_cgroup: bool = False) -> None:
        self.pid_file = pid_file
        self.console_socket = console_socket
        self.console_fd = console_fd  # an already-connected console socket (exec's caller)
        # Foreground `run`: with a terminal and no --console-socket the runtime holds the pty
        # master itself; create then leaves the receiving end of a socketpair here.
        self.own_console = False
        self.console_receiver = None
        self.no_pivot = no_pivot
        self.preserve_fds = preserve_fds
        self.systemd_cgroup = systemd_cgroup


def load_bundle(bundle: str) -> tuple[str, dict, bytes, str]:
    """(absolute bundle dir, validated config.json, its bytes, absolute rootfs)."""
    bundle = os.path.abspath(bundle)
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            raw = f.read()
        spec = fastjson.loads(raw)
    except FileNotFoundError:
        raise RuntimeFailure(f"bundle {bundle}: no config.json (create one with `orlop-runtime spec`)") from None
    except ValueError as e:
        raise RuntimeFailure(f"{path}: not valid JSON: {e}") from None
    if not isinstance(spec, dict):
        raise RuntimeFailure(f"{path}: must hold a JSON object")
    try:
        validate(spec, bundle)
        _validate_security(spec)
    except ConfigError as e:
        raise RuntimeFailure(str(e)) from None
    if "process" not in spec:
        raise RuntimeFailure("config.json: process: required to create a container")
    namespaces = [n["type"] for n in (spec.get("linux") or {}).get("namespaces") or []]
    if "mount" not in namespaces:
        raise RuntimeFailure("config.json: linux.namespaces: a mount namespace is required")
    root_path = spec["root"]["path"]
    return bundle, spec, raw, os.path.normpath(os.path.join(bundle, root_path))


# Devices every container may use whatever its rules say (runc's AllowedDevices):
# mknod of anything, the default /dev nodes, ptys, the console and tun.
_DEFAULT_DEVICE_RULES = [
    {"allow": True, "type": "c", "access": "m"}, {"allow": True, "type": "b", "access": "m"},
    *({"allow": True, "type": "c", "major": major, "minor": minor, "access": "rwm"}
      for major, minor in ((1, 3), (1, 8), (1, 7), (5, 0), (1, 5), (1, 9), (5, 1), (136, None), (5, 2), (10, 200))),
]


def _with_default_device_rules(linux: dict) -> dict:
    """linux.resources with the device rules completed: the config's own, then access to the
    devices of linux.devices and the default ones, as runc appends them."""
    resources = dict(linux.get("resources") or {})
    if "devices" in resources or linux.get("devices"):
        created = [{"allow": True, "type": "c" if d["type"] == "u" else d["type"], "major": d.get("major"),
                    "minor": d.get("minor"), "access": "rwm"}
                   for d in linux.get("devices") or [] if d["type"] in ("c", "b", "u")]
        resources["devices"] = list(resources.get("devices") or []) + created + _DEFAULT_DEVICE_RULES
    return resources


def _validate_security(spec: dict) -> None:
    """What oci.validate leaves to the kernel-facing tables: capability names, seccomp."""
    from orlop.linux import caps

    process_spec = spec.get("process") or {}
    try:
        process.check_lsm(process_spec)
    except OSError as e:
        raise ConfigError("process.apparmorProfile", e.strerror) from None
    for kind, names in (process_spec.get("capabilities") or {}).items():
        for i, name in enumerate(names):
            try:
                caps.parse_caps([name])
            except ValueError as e:
                raise ConfigError(f"process.capabilities.{kind}[{i}]", str(e)) from None
    seccomp_profile = (spec.get("linux") or {}).get("seccomp")
    if seccomp_profile:
        from orlop.linux import seccomp

        try:
            seccomp.validate(seccomp_profile)
        except ValueError as e:
            raise RuntimeFailure(f"config.json: {e}") from None  # the message names the field


def create(root: str, container_id: str, bundle: str, options: CreateOptions) -> ContainerState:
    validate_id(container_id)
    bundle, spec, raw_spec, rootfs = load_bundle(bundle)
    os.makedirs(root, 0o711, exist_ok=True)
    state_dir = os.path.join(root, container_id)
    try:
        os.mkdir(state_dir, 0o711)
    except FileExistsError:
        raise ContainerExists(container_id) from None
    state = ContainerState(container_id, state_dir, bundle, rootfs, spec, raw_spec)
    state.systemd_cgroup = options.systemd_cgroup
    cgroup = child = None
    try:
        os.mkfifo(state.fifo_path)
        os.chmod(state.fifo_path, 0o622)  # not the umask's: the init may run as any user when it opens it
        linux = spec.get("linux") or {}
        cgroup = _make_cgroup(linux, container_id, options)
        state.cgroup_paths = cgroup.paths
        cgroup.apply(_with_default_device_rules(linux))
        child = _spawn(state, cgroup, options)
        if options.pid_file:
            write_atomic(os.path.abspath(options.pid_file), str(state.init_process_pid).encode(), 0o644)
        return state
    except BaseException as e:
        if child:
            _kill_and_reap(child)
        if cgroup is not None:
            cgroup.destroy()
        _remove_state_dir(state_dir)
        if isinstance(e, (sync.InitError, hooks.HookError)):
            raise RuntimeFailure(str(e)) from None
        if isinstance(e, OSError) and not isinstance(e, RuntimeFailure):
            raise RuntimeFailure(init.describe(e)) from None
        raise


def _make_cgroup(linux: dict, container_id: str, options: CreateOptions):
    cgroup = open_manager(linux.get("cgroupsPath") or "", container_id, systemd=options.systemd_cgroup,
                          resources=linux.get("resources"))
    try:
        cgroup.create()
    except PermissionError as e:
        if os.geteuid() == 0:
            raise
        limits = {k: v for k, v in (linux.get("resources") or {}).items() if k != "devices" and v}
        if limits:
            raise RuntimeFailure(f"rootless container: cannot set {', '.join(sorted(limits))} without a cgroup "
                                 f"delegated to this user ({e.strerror}: {e.filename or ''})") from None
        return NoCgroup()
    return cgroup


def _spawn(state: ContainerState, cgroup, options: CreateOptions) -> int:
    """Fork the init, answer its requests until it is `ready`; returns its pid."""
    spec = state.config
    namespaces = {n["type"]: n.get("path") or None for n in spec["linux"]["namespaces"]}
    fifo_fd = os.open(state.fifo_path, os.O_PATH | os.O_CLOEXEC)
    console_fd = options.console_fd
    if spec["process"].get("terminal") and console_fd is None:
        if options.console_socket:
            console_fd = _connect_unix(options.console_socket)
        elif options.own_console:
            import _socket

            ours, theirs = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
            options.console_receiver = ours
            console_fd = theirs.detach()
        else:
            raise RuntimeFailure("cannot allocate tty if runc will detach without setting console socket")
    profile = (spec.get("linux") or {}).get("seccomp")
    seccomp_plan = process.SeccompPlan(profile, spec["process"], seccomp_cache(state.dir)) if profile else None
    parent_sock, child_sock = sync.channel()
    ctx = init.InitContext(spec=spec, bundle=state.bundle, rootfs=state.rootfs, sock=child_sock,
                           fifo_fd=fifo_fd, console_fd=console_fd, preserve_fds=options.preserve_fds,
                           no_pivot=options.no_pivot, cgroup=cgroup, namespaces=namespaces,
                           state=state.oci_state("creating"), in_cgroup=False, seccomp=seccomp_plan)
    try:
        if "user" in namespaces:
            intermediate = _fork(lambda: init.intermediate_main(ctx))
            child_sock.close()
            try:
                _join_cgroup(cgroup, intermediate, parent_sock)
                init_pid = _await_intermediate(parent_sock, intermediate, spec, namespaces)
            except BaseException:
                _kill_and_reap(intermediate)
                raise
            state.init_process_pid = init_pid
        else:
            with _namespaces_for_children(namespaces, spec):
                init_pid = state.init_process_pid = _fork(lambda: init.init_main(ctx))
            child_sock.close()
            _join_cgroup(cgroup, init_pid, parent_sock)
        state.init_process_start = proc.start_time(init_pid) or 0
        state.namespace_paths = {key: f"/proc/{init_pid}/ns/{name}" for key, name in NAMESPACE_KEYS.values()
                                 if os.path.exists(f"/proc/{init_pid}/ns/{name}")}
        _set_oom_score_adj(init_pid, spec["process"])
        # Saved while the init sets itself up (off the critical path); if the init then
        # fails, create's clean-up removes the whole state directory.
        state.save()
        if hooks.has_hooks(spec, *hooks.RUNTIME_CREATE_HOOKS):
            sync.expect(parent_sock, sync.HOOKS)
            for kind in hooks.RUNTIME_CREATE_HOOKS:
                hooks.run_hooks(spec, kind, state.oci_state("creating"))
            sync.send(parent_sock, sync.CONTINUE)
        sync.expect(parent_sock, sync.READY)
        return init_pid
    except BaseException:
        if state.init_process_pid:
            _kill_and_reap(state.init_process_pid)
        raise
    finally:
        parent_sock.close()
        os.close(fifo_fd)
        if seccomp_plan and seccomp_plan.listener_fd is not None:
            os.close(seccomp_plan.listener_fd)
        if console_fd is not None and console_fd != options.console_fd:
            os.close(console_fd)


def seccomp_cache(state_dir: str) -> str:
    """Compiled seccomp programs, shared by the containers of one --root."""
    return os.path.join(os.path.dirname(state_dir), ".seccomp-cache")


def _join_cgroup(cgroup, pid: int, sock) -> None:
    """Move the child into the cgroup v2 tree (if the container has one) while it sets
    itself up, then tell it. (It joins v1 hierarchies itself: see join_current_thread.)"""
    try:
        if cgroup.unified_dir:
            cgroup.add_pid_to_unified(pid)
    except OSError as e:
        raise RuntimeFailure(f"joining the container's cgroup: {init.describe(e)}") from None
    sync.send(sock, sync.JOINED)


def _fork(child_main) -> int:
    pid = os.fork()
    if pid == 0:
        child_main()
        os._exit(1)  # child_main never returns; be sure the child never runs parent code
    return pid


def _await_intermediate(sock, pid: int, spec: dict, namespaces: dict) -> int:
    try:
        if not namespaces["user"]:
            sync.expect(sock, sync.USERNS)
            _write_id_maps(pid, spec["linux"])
            sync.send(sock, sync.CONTINUE)
        return sync.expect(sock, sync.PID)["pid"]
    finally:
        os.waitpid(pid, 0)


def _write_id_maps(pid: int, linux: dict) -> None:
    if os.geteuid() != 0:
        # An unprivileged user may map only its own ids, and only once setgroups is denied.
        with open(f"/proc/{pid}/setgroups", "w") as f:
            f.write("deny")
    for kind in ("uid", "gid"):
        lines = "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in linux[f"{kind}Mappings"])
        try:
            with open(f"/proc/{pid}/{kind}_map", "w") as f:
                f.write(lines)
        except OSError as e:
            raise RuntimeFailure(f"writing {kind}_map of the container ({lines.strip()!r}): {e.strerror}") from None


class _namespaces_for_children:
    """pid and time namespaces take effect for the caller's next child: set them
    up around the fork, then point this process's children back at its own."""

    def __init__(self, namespaces: dict, spec: dict) -> None:
        self.namespaces = namespaces
        self.offsets = (spec.get("linux") or {}).get("timeOffsets")
        self.saved: list[tuple[int, int]] = []

    def __enter__(self) -> None:
        for kind, flag in init.CHILD_NAMESPACES.items():
            if kind not in self.namespaces:
                continue
            own = os.open(f"/proc/self/ns/{'pid' if kind == 'pid' else 'time'}", os.O_RDONLY | os.O_CLOEXEC)
            self.saved.append((own, flag))
            init.join_and_unshare({kind: self.namespaces[kind]}, {kind: flag})
            if kind == "time" and not self.namespaces[kind] and self.offsets:
                with open("/proc/self/timens_offsets", "w") as f:
                    for clock, offset in self.offsets.items():
                        f.write(f"{clock} {offset.get('secs', 0)} {offset.get('nanosecs', 0)}\n")

    def __exit__(self, *exc) -> None:
        for fd, flag in self.saved:
            sc.setns(fd, flag)
            os.close(fd)


def _set_oom_score_adj(pid: int, process: dict) -> None:
    if "oomScoreAdj" in process:
        with open(f"/proc/{pid}/oom_score_adj", "w") as f:
            f.write(str(process["oomScoreAdj"]))


def _connect_unix(path: str) -> int:
    import _socket

    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as e:
        sock.close()
        raise RuntimeFailure(f"connecting to console socket {path}: {e.strerror}") from None
    return sock.detach()


def _kill_and_reap(pid: int) -> None:
    try:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    except ChildProcessError:
        # Not our child (the intermediate forked it): wait until it is gone.
        import time

        for _ in range(500):
            if not proc.is_alive(pid):
                break
            time.sleep(0.002)
    except ProcessLookupError:
        pass


def _remove_state_dir(state_dir: str) -> None:
    for name in (EXEC_FIFO, "state.json", "config.json"):
        try:
            os.unlink(os.path.join(state_dir, name))
        except FileNotFoundError:
            pass
    try:
        os.rmdir(state_dir)
    except OSError:
        import shutil

        shutil.rmtree(state_dir, ignore_errors=True)
