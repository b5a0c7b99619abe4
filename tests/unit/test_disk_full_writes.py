"""Writes on a filling disk, with os.write made to behave as the kernel's does then: a
short write of what fits, then ENOSPC. Whole records or nothing, and errors naming the file."""

from __future__ import annotations

import errno
import json
import os

import pytest

from orlop.fsutil import write_atomic
from orlop.shim.logs import JsonFileLog


class FillingDisk:
    """os.write with `room` bytes left on the disk."""

    def __init__(self, monkeypatch, room: int) -> None:
        self.room = room
        real = os.write

        def write(fd, data):
            if fd <= 2:  # the shim's own messages
                return real(fd, data)
            if self.room <= 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            written = real(fd, bytes(data[:self.room]))
            self.room -= written
            return written

        monkeypatch.setattr(os, "write", write)


def test_write_atomic_never_leaves_a_short_file(tmp_path, monkeypatch):
    path = str(tmp_path / "images.json")
    write_atomic(path, b'{"old": 1}')
    FillingDisk(monkeypatch, room=10)
    with pytest.raises(OSError) as raised:
        write_atomic(path, json.dumps({"new": "x" * 100}).encode())
    assert raised.value.errno == errno.ENOSPC and raised.value.filename == path
    assert open(path, "rb").read() == b'{"old": 1}'
    assert os.listdir(tmp_path) == ["images.json"]


def test_the_json_file_log_drops_what_cannot_be_written_and_resumes(tmp_path, monkeypatch):
    path = str(tmp_path / "c-json.log")
    log = JsonFileLog(path)
    log.write("stdout", b"first\n")
    disk = FillingDisk(monkeypatch, room=30)   # part of the next entry fits
    log.write("stdout", b"second\nthird\n")
    assert log.dropped == 2
    disk.room = 1 << 20                        # space freed
    log.write("stderr", b"fourth\n")
    log.close()
    entries = [json.loads(line) for line in open(path, "rb")]  # whole lines only
    assert [(e["stream"], e["log"]) for e in entries] == [("stdout", "first\n"), ("stderr", "fourth\n")]
    assert log.dropped == 0
