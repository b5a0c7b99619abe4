"""A created container and the verbs after `create`: status, start, kill,
pause/resume, update, delete.

Status follows runc: `created` while the init waits on exec.fifo, `running`
after start, `paused` when its cgroup is frozen, `stopped` once the init (the
pid *with its recorded start time*) is gone or a zombie.
"""

from __future__ import annotations

import os
import time

from orlop.linux.cgroups import load_manager
from orlop.runtime import hooks
from orlop.runtime.errors import InvalidState, RuntimeFailure
from orlop.runtime.state import ContainerState

CREATED, RUNNING, PAUSED, STOPPED = "created", "running", "paused", "stopped"


def status(state: ContainerState) -> str:
    if not state.init_alive():
        return STOPPED
    if os.path.exists(state.fifo_path):
        return CREATED
    if state.cgroup_paths and load_manager(state.cgroup_paths).is_frozen():
        return PAUSED
    return RUNNING


def start(state: ContainerState) -> None:
    current = status(state)
    if current != CREATED:
        raise InvalidState(f"cannot start a container that has {current}" if current == STOPPED
                           else f"cannot start an already {current} container")
    _release_init(state)
    os.unlink(state.fifo_path)
    try:
        hooks.run_hooks(state.config, "poststart", state.oci_state(RUNNING))
    except hooks.HookError as e:
        # The process runs already; like runc, report the hook but keep the container.
        raise RuntimeFailure(str(e)) from None


def _release_init(state: ContainerState) -> None:
    """Open exec.fifo for reading: this unblocks the init, which writes one byte and execs.

    Opened non-blocking and polled, so that an init that died meanwhile is reported
    instead of hanging `start` forever.
    """
    import select

    fd = os.open(state.fifo_path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while True:
            if poller.poll(50):
                if os.read(fd, 1):
                    return
                raise RuntimeFailure("container init exited before it could start the process")
            if not state.init_alive():
                raise RuntimeFailure("cannot start a container that has stopped")
    finally:
        os.close(fd)


def kill(state: ContainerState, sig: int, all_processes: bool = False) -> None:
    current = status(state)
    if current == STOPPED and not all_processes:
        raise InvalidState("container not running")
    if all_processes or not _has_own_pid_namespace(state):
        # Without its own pid namespace the init's death would not take the others with it.
        if state.cgroup_paths:
            load_manager(state.cgroup_paths).kill_all(sig)
        if current == STOPPED:
            return
    try:
        os.kill(state.init_process_pid, sig)
    except ProcessLookupError:
        raise InvalidState("container not running") from None


def _has_own_pid_namespace(state: ContainerState) -> bool:
    namespaces = (state.config.get("linux") or {}).get("namespaces") or []
    return any(n.get("type") == "pid" and not n.get("path") for n in namespaces)


def pause(state: ContainerState) -> None:
    current = status(state)
    if current not in (RUNNING, CREATED):
        raise InvalidState(f"container not running: {current}")
    _freezer(state).freeze()


def resume(state: ContainerState) -> None:
    current = status(state)
    if current != PAUSED:
        raise InvalidState("container not paused")
    _freezer(state).thaw()


def _freezer(state: ContainerState):
    cgroup = load_manager(state.cgroup_paths)
    if cgroup.version == 1 and "freezer" not in cgroup.paths:
        raise InvalidState(f"container {state.id} has no freezer cgroup (a rootless container without a "
                           "delegated cgroup, or a host without the freezer controller): cannot pause")
    return cgroup


def update(state: ContainerState, delta: dict) -> None:
    """Apply a LinuxResources delta to a created, running or paused container's cgroup and
    keep the merged resources in its config.json (for `state` and the next update).

    Only the sections the delta touches are written, with their merged values; if the
    kernel refuses a value, what was written is put back (as runc does).
    """
    from orlop.runtime.update_resources import merge, to_apply

    if status(state) == STOPPED:
        raise InvalidState("container not running")
    if not state.cgroup_paths:
        raise InvalidState(f"container {state.id} has no cgroup (a rootless container without a delegated "
                           "cgroup): its resources cannot be updated")
    config = state.config
    linux = config.setdefault("linux", {})
    current = linux.get("resources") or {}
    merged = merge(current, delta)
    writes = to_apply(merged, delta)
    if not writes:
        return
    cgroup = load_manager(state.cgroup_paths)
    try:
        cgroup.apply(writes)
    except OSError:
        previous = {name: current[name] for name in writes if name in current and name != "unified"}
        try:
            cgroup.apply(previous)
        except OSError:
            pass  # the first error is the one to report
        raise
    linux["resources"] = merged
    state.save_config(config)


def delete(state: ContainerState, force: bool = False) -> None:
    """Remove a stopped container; a created one is killed first (as runc does), a
    running or paused one only with force."""
    current = status(state)
    if current in (RUNNING, PAUSED) and not force:
        raise InvalidState(f"cannot delete container {state.id} that is not stopped: {current}")
    cgroup = load_manager(state.cgroup_paths) if state.cgroup_paths else None
    if current != STOPPED:
        if current == PAUSED and cgroup:
            cgroup.thaw()
        if cgroup:
            cgroup.kill_all(9)
        try:
            os.kill(state.init_process_pid, 9)
        except ProcessLookupError:
            pass
        _wait_gone(state)
    if cgroup:
        cgroup.destroy()
    try:
        hooks.run_hooks(state.config, "poststop", state.oci_state(STOPPED))
    finally:
        _remove_dir(state.dir)


def _wait_gone(state: ContainerState, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    delay = 0.001
    while state.init_alive():
        if time.monotonic() > deadline:
            raise RuntimeFailure(f"container {state.id}: init {state.init_process_pid} did not die after SIGKILL")
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def _remove_dir(path: str) -> None:
    for name in os.listdir(path):
        os.unlink(os.path.join(path, name))
    os.rmdir(path)


def pids(state: ContainerState) -> list[int]:
    if not state.cgroup_paths:
        return [state.init_process_pid] if state.init_alive() else []
    return load_manager(state.cgroup_paths).pids()
