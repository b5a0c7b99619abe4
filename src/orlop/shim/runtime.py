"""Running the OCI runtime's command line (orlop-runtime, runc or crun) from the shim.

posix_spawn and waitpid only: the shim stays small (no subprocess module, no
threads), and it is single-threaded, so a child it waits for here cannot be
reaped from under it by its SIGCHLD loop.
"""

from __future__ import annotations

import os

from orlop import fastjson
from orlop.shim.protocol import RUNTIME_LOG


class RuntimeError_(Exception):
    """A runtime command failed; the message is the runtime's own last error."""


class Runtime:
    def __init__(self, path: str, root: str, state_dir: str, env: dict | None = None) -> None:
        self.path = path
        self.root = root
        self.log = f"{state_dir}/{RUNTIME_LOG}"
        self.env = os.environ if env is None else env  # the runtime's environment

    def run(self, args: list[str], stdio: tuple[int, int, int] | None = None) -> None:
        argv = [self.path, "--root", self.root, "--log", self.log, "--log-format", "json", *args]
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        try:
            fds = stdio or (null, null, null)
            actions = [(os.POSIX_SPAWN_DUP2, fd, target) for target, fd in enumerate(fds)]
            pid = os.posix_spawn(self.path, argv, self.env, file_actions=actions)
        finally:
            os.close(null)
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            raise RuntimeError_(self.last_error() or f"{os.path.basename(self.path)} {args[0]} exited with {code}")

    def last_error(self) -> str:
        """The last error the runtime logged (runc's --log-format json lines)."""
        try:
            fd = os.open(self.log, os.O_RDONLY | os.O_CLOEXEC)
            try:
                lines = os.read(fd, os.fstat(fd).st_size).splitlines()
            finally:
                os.close(fd)
        except OSError:
            return ""
        for line in reversed(lines):
            try:
                entry = fastjson.loads(line.decode(errors="replace"))
            except ValueError:
                continue
            if isinstance(entry, dict) and entry.get("level") in ("error", "fatal"):
                return str(entry.get("msg", ""))
        return ""
