"""Pure logic of the runtime: JSON, signals, id rules, path resolution inside a rootfs,
the command-line shape."""

from __future__ import annotations

import json
import os

import pytest

from orlop import fastjson
from orlop.runtime.cli import _go_style
from orlop.runtime.errors import RuntimeFailure
from orlop.runtime.rootfs import resolve_in_root
from orlop.runtime.signals import parse_signal, wait_status_to_exit_code
from orlop.runtime.state import validate_id


@pytest.mark.parametrize("value", [
    {}, [], {"a": [1, 2.5, -3, None, True, False, "é\"\\\n"]}, {"nested": {"x": [{"y": []}]}}, "s", 0, 1e100,
])
def test_fastjson_round_trips_like_json(value):
    assert fastjson.loads(fastjson.dumps(value)) == value
    assert fastjson.dumps(value) == json.dumps(value)
    assert json.loads(fastjson.dumps(value, indent=2)) == value


def test_fastjson_errors_are_jsons():
    with pytest.raises(ValueError, match="line 2 column 1"):
        fastjson.loads('{"a": 1,\n}')
    with pytest.raises(ValueError):
        fastjson.loads('{"a": 1} trailing')
    assert fastjson.loads(b'\xef\xbb\xbf  {"bom": 1}  \n') == {"bom": 1}


@pytest.mark.parametrize(("text", "number"), [
    ("9", 9), ("KILL", 9), ("SIGKILL", 9), ("sigterm", 15), ("USR1", 10), ("SIGRTMIN", 34), ("SIGRTMIN+3", 37),
    ("RTMAX-1", 63), ("SIGWINCH", 28),
])
def test_parse_signal(text, number):
    assert parse_signal(text) == number


@pytest.mark.parametrize("text", ["0", "65", "NOPE", "SIGRTMIN+99", ""])
def test_parse_signal_rejects(text):
    with pytest.raises(ValueError):
        parse_signal(text)


def test_wait_status_to_exit_code():
    assert wait_status_to_exit_code(3 << 8) == 3
    assert wait_status_to_exit_code(9) == 137
    assert wait_status_to_exit_code(15) == 143


@pytest.mark.parametrize("good", ["abc", "a-b_c.d+e", "0" * 64])
def test_valid_ids(good):
    validate_id(good)


@pytest.mark.parametrize("bad", ["", ".", "..", "a/b", "../x", "a b", "é"])
def test_invalid_ids(bad):
    with pytest.raises(RuntimeFailure, match="invalid container id"):
        validate_id(bad)


def test_resolve_in_root_follows_symlinks_inside(tmp_path):
    root = str(tmp_path / "root")
    os.makedirs(root + "/real/dir")
    os.symlink("/real", root + "/abs")          # absolute: relative to the rootfs, not the host
    os.symlink("../../..", root + "/real/dir/up")  # climbs past the top: clamped
    os.symlink("/etc", root + "/hostetc")
    os.symlink("loop2", root + "/loop1")
    os.symlink("loop1", root + "/loop2")
    assert resolve_in_root(root, "/abs/dir") == root + "/real/dir"
    assert resolve_in_root(root, "/real/dir/up/etc") == root + "/etc"
    assert resolve_in_root(root, "/hostetc/passwd") == root + "/etc/passwd"
    assert resolve_in_root(root, "/../../x") == root + "/x"
    assert resolve_in_root(root, "/") == root
    assert resolve_in_root(root, "/new/sub") == root + "/new/sub"
    with pytest.raises(OSError, match="too many levels"):
        resolve_in_root(root, "/loop1")


def test_go_style_flags():
    longs = ["bundle=", "detach", "root="]
    assert _go_style(["-bundle", "x", "-d", "id"], longs) == ["--bundle", "x", "-d", "id"]
    assert _go_style(["-root=/r", "run"], longs) == ["--root=/r", "run"]
    # After the first positional argument nothing is rewritten (it is the container's command).
    assert _go_style(["id", "-bundle"], longs) == ["id", "-bundle"]


def test_sync_reads_the_last_words_of_a_child_that_left_a_message_unread():
    from orlop.runtime import sync

    parent, child = sync.channel()
    sync.send(parent, sync.JOINED)          # never read by the child...
    sync.send(child, sync.ERROR, message="mount failed")
    child.close()                           # ...which exits: the kernel flags ECONNRESET first
    with pytest.raises(sync.InitError, match="mount failed"):
        sync.expect(parent, sync.READY)
    parent.close()
