"""Showing pull/push progress events as the docker CLI does.

Events are Docker's JSON progress messages ({"status", "id", "progressDetail":
{"current", "total"}}, or {"error": …}). On a terminal each layer id owns one line,
rewritten in place with a bar (`[=====>      ]  12.35MB/45.6MB`); elsewhere every
status change is printed once as a plain line and byte counts are left out, as
`docker pull | cat` does.
"""

from __future__ import annotations

from typing import TextIO

_UNITS = ("B", "kB", "MB", "GB", "TB", "PB")
BAR_WIDTH = 50


def human_size(size: float) -> str:
    """Decimal units with four significant digits, as Docker's units.HumanSize: 12.35MB."""
    unit = 0
    while size >= 1000 and unit < len(_UNITS) - 1:
        size /= 1000
        unit += 1
    return f"{size:.4g}{_UNITS[unit]}"


def progress_string(detail: dict | None) -> str:
    """The bar Docker puts in a message's "progress" field (empty when nothing is known)."""
    current, total = (detail or {}).get("current") or 0, (detail or {}).get("total") or 0
    if current <= 0 and total <= 0:
        return ""
    if total <= 0 or current > total:
        return f"{human_size(current):>8}"
    filled = int(current * BAR_WIDTH / total)
    arrow = ">" if filled < BAR_WIDTH else ""
    bar = "=" * filled + arrow + " " * (BAR_WIDTH - filled - len(arrow))
    return f"[{bar}] {human_size(current):>8}/{human_size(total)}"


def with_progress_field(event: dict) -> dict:
    """Add the rendered "progress" string that the Engine API carries beside progressDetail."""
    if "progressDetail" in event and "progress" not in event:
        bar = progress_string(event["progressDetail"])
        if bar:
            return {**event, "progress": bar}
    return event


class ProgressPrinter:
    """Feed it events in order; it draws them on `out`."""

    def __init__(self, out: TextIO, tty: bool | None = None) -> None:
        self.out = out
        self.tty = out.isatty() if tty is None else tty
        self._lines: dict[str, int] = {}  # layer id -> line index, on a terminal
        self._last: dict[str, str] = {}    # layer id -> last status printed, elsewhere
        self._count = 0

    def __call__(self, event: dict) -> None:
        if "error" in event or "errorDetail" in event:
            message = event.get("error") or (event.get("errorDetail") or {}).get("message", "")
            raise RuntimeError(message)
        if "stream" in event:
            self.out.write(event["stream"])
            self.out.flush()
            return
        layer, status = event.get("id"), event.get("status", "")
        if self.tty:
            self._draw(layer, status, event)
        else:
            if layer and self._last.get(layer) == status:
                return  # a byte-count update: nothing new for a log
            if layer:
                self._last[layer] = status
            self.out.write(f"{layer}: {status}\n" if layer else f"{status}\n")
        self.out.flush()

    def _draw(self, layer: str | None, status: str, event: dict) -> None:
        bar = progress_string(event.get("progressDetail"))
        text = f"{layer}: {status} {bar}".rstrip() if layer else status
        if not layer or layer not in self._lines:
            if layer:
                self._lines[layer] = self._count
            self._count += 1
            self.out.write(f"\x1b[2K\r{text}\n")
            return
        up = self._count - self._lines[layer]
        # Up to the layer's line, clear it, write, and back down to the bottom.
        self.out.write(f"\x1b[{up}A\x1b[2K\r{text}\x1b[{up}B\r")
