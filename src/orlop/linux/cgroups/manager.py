"""CgroupManager: what the runtime calls, whatever the cgroup version.

V1Manager (legacy and hybrid hosts) and V2Manager (unified hosts) fill in the
version-specific parts; signalling every process and removal are shared here.
"""

from __future__ import annotations

import errno

from orlop.linux.cgroups.common import CgroupError, remove_tree, signal_all, write

SIGKILL = 9  # not signal.SIGKILL: importing signal costs start-up time


class CgroupManager:
    """A container's cgroup: one directory per v1 hierarchy, or one cgroup2 directory.

    `paths` maps a controller to its directory ("" for the cgroup2 one, as in runc's
    state.json `cgroup_paths`); it is all that `load_manager` needs later.
    """

    __slots__ = ("paths",)
    version = 0

    def __init__(self, paths: dict[str, str]) -> None:
        self.paths = paths

    # V1Manager and V2Manager provide the version-specific half of the interface:
    # create(), apply(resources), add_pid(pid), join_current_thread(), pids(), freeze(),
    # thaw(), is_frozen(), can_freeze(), stats(), oom_kill_count().

    # -- shared --------------------------------------------------------------------------
    @property
    def unified_dir(self) -> str | None:
        """The cgroup2 directory, if the container has one (always on v2; on a hybrid
        host only when its resources need the cgroup2 tree)."""
        return self.paths.get("")

    def add_pid_to_unified(self, pid: int) -> None:
        """Move `pid` (0: the caller) into the cgroup2 directory only; the runtime does
        this while the init joins the v1 hierarchies itself."""
        if "" in self.paths:
            write(self.paths[""], "cgroup.procs", pid)

    def distinct_dirs(self) -> list[str]:
        """Each directory once (co-mounted controllers such as cpu,cpuacct share one)."""
        return list(dict.fromkeys(self.paths.values()))

    def kill_all(self, sig: int) -> None:
        """Signal every process in the cgroup, as runc's signalAllProcesses does.

        SIGKILL goes through cgroup.kill where the kernel has it (5.14+): one write,
        no race with forks. Otherwise the cgroup is frozen while its pids are listed
        and signalled, so that nothing forks unseen, then thawed again, except when
        it was paused before and the signal can wait for the resume (SIGKILL cannot:
        a frozen process does not die).
        """
        if sig == SIGKILL and self._kill_via_cgroup_kill():
            return
        was_frozen = self.is_frozen()
        froze = False
        if self.can_freeze():
            try:
                self.freeze()
                froze = True
            except CgroupError:
                pass  # signal anyway, as runc does; a process forked meanwhile may be missed
        try:
            signal_all(self.pids(), sig)
        finally:
            if froze and (sig == SIGKILL or not was_frozen):
                self.thaw()

    def _kill_via_cgroup_kill(self) -> bool:
        directory = self.paths.get("")
        if directory is None:
            return False
        try:
            write(directory, "cgroup.kill", 1)
            return True
        except CgroupError as e:
            if e.errno == errno.ENOENT:
                return False  # a kernel before 5.14, or the cgroup is gone: the slow way
            raise

    def destroy(self) -> None:
        """rmdir every directory (and cgroups made below them); missing ones are fine."""
        errors = []
        for directory in self.distinct_dirs():
            try:
                remove_tree(directory)
            except CgroupError as e:
                errors.append(e)
        if errors:
            raise errors[0]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.paths}>"


class NoCgroup(CgroupManager):
    """A container without a cgroup: what an unprivileged (rootless) user gets when no
    cgroup was delegated to it and the config asks for no limits (runc's rootless mode).
    Its empty `paths` are saved, so later commands never load a manager for it."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__({})

    def create(self) -> None:
        pass

    def apply(self, resources: dict) -> None:
        pass

    def add_pid(self, pid: int) -> None:
        pass

    def join_current_thread(self) -> None:
        pass

    def pids(self) -> list[int]:
        return []

    def can_freeze(self) -> bool:
        return False

    def freeze(self) -> None:
        raise CgroupError(errno.EOPNOTSUPP, "cannot pause a container that has no cgroup")

    thaw = freeze

    def is_frozen(self) -> bool:
        return False

    def stats(self) -> dict:
        return {"memory": {}, "cpu": {}, "pids": {}}

    def oom_kill_count(self) -> int:
        return 0
