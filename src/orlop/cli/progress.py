"""JSON message streams (pull, push, load) shown as docker's jsonmessage does: on a
terminal each layer id owns a line rewritten in place; elsewhere progress bars are left
out and other messages print as `<id>: <status>`. An `errorDetail` ends the command."""

from __future__ import annotations

import os

from orlop.cli.errors import CommandError
from orlop.cli.streams import write_all


def _bar(message: dict) -> str:
    text = message.get("progress") or ""
    if text:
        return text
    detail = message.get("progressDetail") or {}
    current, total = detail.get("current") or 0, detail.get("total") or 0
    if current <= 0 and total <= 0:
        return ""
    from orlop.cli.units import human_size

    return f"{human_size(current)}/{human_size(total)}" if total > 0 else human_size(current)


def display(messages, fd: int = 1, terminal: bool | None = None, on_aux=None) -> None:
    """`messages`: an iterator of parsed JSON objects."""
    if terminal is None:
        terminal = os.isatty(fd)
    ids: dict[str, int] = {}
    for message in messages:
        if message.get("errorDetail") is not None:
            detail = message["errorDetail"] or {}
            text = detail.get("message") or message.get("error") or "unknown error"
            raise CommandError(text, detail.get("code") or 1)
        if message.get("aux") is not None:
            if on_aux:
                on_aux(message["aux"])
            continue
        has_progress = "progressDetail" in message or bool(message.get("progress"))
        ident = message.get("id") or ""
        diff = 0
        out: list[str] = []
        if ident and has_progress:
            line = ids.get(ident)
            if line is None:
                line = len(ids)
                ids[ident] = line
                if terminal:
                    out.append("\n")
            diff = len(ids) - line
            if terminal:
                out.append(f"\x1b[{diff}A")
        else:
            ids = {}
        bar = _bar(message)
        endl = ""
        if terminal and not message.get("stream") and has_progress:
            out.append("\x1b[2K\r")
            endl = "\r"
        elif bar and not terminal and "progressDetail" in message:
            continue  # no progress bars when not on a terminal
        if ident:
            out.append(f"{ident}: ")
        if has_progress and terminal:
            out.append(f"{message.get('status', '')} {bar}{endl}" if bar else f"{message.get('status', '')}{endl}")
        elif message.get("stream"):
            out.append(message["stream"] + endl)
        else:
            out.append(f"{message.get('status', '')}{endl}\n")
        if ident and terminal and diff:
            out.append(f"\x1b[{diff}B")
        write_all(fd, "".join(out).encode())
