"""Copy between the runtime's own stdio and a container's pty master (foreground
`run`/`exec` with a terminal and no --console-socket)."""

from __future__ import annotations

import _signal
import os
import select


def proxy(master: int, pid: int) -> None:
    """Until the container side hangs up: stdin -> master, master -> stdout."""
    from orlop.linux import pty

    stdin_tty = os.isatty(0)
    saved = None
    if stdin_tty:
        import termios
        import tty

        saved = termios.tcgetattr(0)
        tty.setraw(0)
        rows, cols = pty.get_window_size(0)
        pty.set_window_size(master, rows, cols)
        _signal.signal(_signal.SIGWINCH, lambda *_: pty.set_window_size(master, *pty.get_window_size(0)))
    sources = [master, 0]
    try:
        while True:
            try:
                readable, _, _ = select.select(sources, [], [])
            except InterruptedError:
                continue
            if master in readable:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: every holder of the slave has closed it
                    data = b""
                if not data:
                    return
                os.write(1, data)
            if 0 in readable:
                data = os.read(0, 65536)
                if data:
                    os.write(master, data)
                else:
                    sources.remove(0)  # stdin closed; keep printing the output
    finally:
        if saved is not None:
            import termios

            termios.tcsetattr(0, termios.TCSADRAIN, saved)
        os.close(master)
