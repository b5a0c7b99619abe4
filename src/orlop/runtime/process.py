"""The last steps before a container process runs, shared by init and exec:
rlimits, the user and its capabilities, no_new_privs, umask, cwd, file
descriptors, signal dispositions, and finding the executable."""

from __future__ import annotations

import _signal
import os
import resource

from orlop.linux import caps
from orlop.linux import syscalls as sc
from orlop.oci.runtime_spec import RLIMITS

_RLIM_INFINITY_OCI = 2**64 - 1


def apply_rlimits(process: dict) -> None:
    for limit in process.get("rlimits") or []:
        kind = limit["type"]
        soft, hard = (resource.RLIM_INFINITY if v >= _RLIM_INFINITY_OCI else v
                      for v in (limit["soft"], limit["hard"]))
        try:
            resource.setrlimit(RLIMITS[kind], (soft, hard))  # by number: Python lacks RLIMIT_LOCKS
        except (ValueError, OSError) as e:
            raise OSError(getattr(e, "errno", 1) or 1,
                          f"setrlimit {kind} soft={limit['soft']} hard={limit['hard']}: {e}") from None


def reset_signals() -> None:
    """Undo what the Python interpreter did to signals: it ignores SIGPIPE and
    SIGXFSZ, and an ignored signal stays ignored across execve."""
    for sig in (_signal.SIGPIPE, _signal.SIGXFSZ):
        _signal.signal(sig, _signal.SIG_DFL)
    _signal.pthread_sigmask(_signal.SIG_SETMASK, [])


def close_extra_fds(first_to_close: int, keep: tuple[int, ...] = ()) -> None:
    """Mark every fd from `first_to_close` close-on-exec, except `keep`, so nothing of
    the runtime's (or its caller's) leaks into the container."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd >= first_to_close and fd not in keep:
            try:
                os.set_inheritable(fd, False)
            except OSError:
                pass  # the fd listdir itself used, now closed


def switch_user(process: dict) -> None:
    """setgroups/setgid/setuid and the capability sets, in the order that keeps
    exactly the configured capabilities for root and non-root users alike."""
    user = process.get("user") or {}
    uid, gid = user.get("uid", 0), user.get("gid", 0)
    extra_gids = list(user.get("additionalGids") or [])
    capabilities = process.get("capabilities")
    if capabilities is not None:
        sets = {name: caps.parse_caps(capabilities.get(name) or [])
                for name in ("bounding", "effective", "permitted", "inheritable", "ambient")}
        caps.apply_capabilities(sets["bounding"], sets["effective"], sets["permitted"], sets["inheritable"],
                                sets["ambient"], uid=uid, gid=gid, additional_gids=extra_gids)
    else:
        caps.set_groups(extra_gids)
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    if process.get("noNewPrivileges"):
        sc.set_no_new_privs()


def find_executable(arg0: str, env: list[str]) -> str:
    """Resolve argv[0] on the container's PATH (as execvp would), or fail clearly now,
    at create time, rather than after `start`."""
    if "/" in arg0:
        candidates = [arg0]
    else:
        path = next((e[5:] for e in env if e.startswith("PATH=")),
                    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        candidates = [os.path.join(d or ".", arg0) for d in path.split(":")]
    for candidate in candidates:
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    if "/" in arg0:
        reason = "permission denied" if os.path.exists(arg0) else "no such file or directory"
        raise OSError(2, f'exec: "{arg0}": {reason}')
    raise OSError(2, f'exec: "{arg0}": executable file not found in $PATH')


def env_dict(env: list[str], uid: int = 0) -> dict[str, str]:
    """The environment to exec with; HOME comes from the container's /etc/passwd when
    the config does not set it (as runc does), else "/"."""
    result = {}
    for entry in env:
        key, _, value = entry.partition("=")
        result[key] = value
    if "HOME" not in result:
        result["HOME"] = _home_of(uid)
    return result


def _home_of(uid: int) -> str:
    try:
        with open("/etc/passwd") as f:
            for line in f:
                fields = line.rstrip("\n").split(":")
                if len(fields) >= 6 and fields[2] == str(uid):
                    return fields[5] or "/"
    except OSError:
        pass
    return "/"


def chdir_cwd(process: dict, create: bool) -> None:
    cwd = process.get("cwd") or "/"
    if create and not os.path.isdir(cwd):
        os.makedirs(cwd, 0o755, exist_ok=True)
    try:
        os.chdir(cwd)
    except OSError as e:
        raise OSError(e.errno, f"chdir to cwd ({cwd!r}) set in config.json failed: {e.strerror}") from None


class SeccompPlan:
    """A container's seccomp filter, compiled before the fork (see linux/seccomp.py).

    `early`: without noNewPrivileges the filter must be installed while the process
    still has CAP_SYS_ADMIN, i.e. before the user switch (runc does the same);
    otherwise it is the very last step before execve.
    """

    __slots__ = ("bpf", "flags", "notify", "listener_fd", "metadata", "early")

    def __init__(self, profile: dict, process_spec: dict, cache_dir: str | None) -> None:
        from orlop.linux import seccomp

        self.bpf = seccomp.compiled(profile, cache_dir)
        self.flags = profile.get("flags") or []
        self.notify = seccomp.uses_notify(profile)
        self.metadata = profile.get("listenerMetadata") or ""
        self.early = not process_spec.get("noNewPrivileges")
        self.listener_fd = None
        if self.notify:
            listener = profile.get("listenerPath")
            if not listener:
                raise OSError(22, "linux.seccomp: SCMP_ACT_NOTIFY needs a listenerPath")
            import _socket

            sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
            sock.connect(listener)
            self.listener_fd = sock.detach()

    def install(self, state: dict) -> None:
        from orlop.linux import seccomp

        notify_fd = seccomp.load_filter(self.bpf, self.flags, notify=self.notify)
        if notify_fd is not None:
            _send_notify_fd(self.listener_fd, notify_fd, self.metadata, state)


def _send_notify_fd(listener_fd: int, notify_fd: int, metadata: str, state: dict) -> None:
    """Hand the seccomp notify fd to the listener, in the runtime-spec's seccomp state shape."""
    import _socket
    import struct

    from orlop import fastjson

    message = {"ociVersion": "1.0.2", "fds": ["seccompFd"], "pid": state.get("pid", 0), "metadata": metadata,
               "state": state}
    sock = _socket.socket(fileno=listener_fd)
    try:
        sock.sendmsg([fastjson.dumps(message).encode()],
                     [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, struct.pack("i", notify_fd))])
    finally:
        sock.close()
        os.close(notify_fd)


def apparmor_enabled() -> bool:
    try:
        with open("/sys/module/apparmor/parameters/enabled") as f:
            return f.read().strip() == "Y"
    except OSError:
        return False


def selinux_enabled() -> bool:
    return os.path.exists("/sys/fs/selinux/enforce")


def check_lsm(process_spec: dict) -> None:
    """At create time: an AppArmor profile on a host without AppArmor is refused (the
    confinement asked for cannot be given); an SELinux label on a host without SELinux
    is ignored, as runc does (engines set one on every container of an SELinux host)."""
    profile = process_spec.get("apparmorProfile")
    if profile and not apparmor_enabled():
        raise OSError(95, f"process.apparmorProfile {profile!r}: AppArmor is not enabled on this host")


def apply_lsm(process_spec: dict) -> None:
    """Ask the kernel to switch to the AppArmor profile / SELinux label at the next execve."""
    profile = process_spec.get("apparmorProfile")
    if profile:
        path = "/proc/self/attr/apparmor/exec"
        with open(path if os.path.exists(path) else "/proc/self/attr/exec", "w") as f:
            f.write(f"exec {profile}")
    label = process_spec.get("selinuxLabel")
    if label and selinux_enabled():
        with open("/proc/self/attr/exec", "w") as f:
            f.write(label)
