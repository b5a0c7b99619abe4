"""Signal names and numbers as runc parses them, without importing `signal`
(which pulls in enum, ~4 ms of start-up)."""

from __future__ import annotations

# Linux numbering, shared by x86_64 and aarch64.
SIGNALS: dict[str, int] = {
    "SIGHUP": 1, "SIGINT": 2, "SIGQUIT": 3, "SIGILL": 4, "SIGTRAP": 5, "SIGABRT": 6, "SIGIOT": 6,
    "SIGBUS": 7, "SIGFPE": 8, "SIGKILL": 9, "SIGUSR1": 10, "SIGSEGV": 11, "SIGUSR2": 12,
    "SIGPIPE": 13, "SIGALRM": 14, "SIGTERM": 15, "SIGSTKFLT": 16, "SIGCHLD": 17, "SIGCONT": 18,
    "SIGSTOP": 19, "SIGTSTP": 20, "SIGTTIN": 21, "SIGTTOU": 22, "SIGURG": 23, "SIGXCPU": 24,
    "SIGXFSZ": 25, "SIGVTALRM": 26, "SIGPROF": 27, "SIGWINCH": 28, "SIGIO": 29, "SIGPOLL": 29,
    "SIGPWR": 30, "SIGSYS": 31,
}
SIGRTMIN, SIGRTMAX = 34, 64


def parse_signal(text: str) -> int:
    """'9', 'KILL', 'SIGKILL', 'sigkill', 'SIGRTMIN+3' -> signal number; ValueError otherwise."""
    text = text.strip()
    if text.isdigit():
        number = int(text)
        if 0 < number <= SIGRTMAX:
            return number
        raise ValueError(f"invalid signal number {number}")
    name = text.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    if name in SIGNALS:
        return SIGNALS[name]
    for base, value in (("SIGRTMIN", SIGRTMIN), ("SIGRTMAX", SIGRTMAX)):
        if name == base:
            return value
        if name.startswith(base) and name[len(base)] in "+-" and name[len(base) + 1:].isdigit():
            offset = int(name[len(base) + 1:]) * (1 if name[len(base)] == "+" else -1)
            if SIGRTMIN <= value + offset <= SIGRTMAX:
                return value + offset
    raise ValueError(f"unknown signal {text!r}")


def wait_status_to_exit_code(status: int) -> int:
    """A waitpid status as a shell reports it: the exit code, or 128 + the killing signal."""
    if status & 0x7F == 0:
        return (status >> 8) & 0xFF
    return 128 + (status & 0x7F)
