"""Progress shown like the docker CLI: bars redrawn in place on a TTY, plain lines elsewhere."""

from __future__ import annotations

import io

import pytest

from orlop.images.progress import ProgressPrinter, human_size, progress_string, with_progress_field


def test_human_size_matches_docker_units():
    assert human_size(0) == "0B"
    assert human_size(999) == "999B"
    assert human_size(12345678) == "12.35MB"
    assert human_size(2_000_000_000) == "2GB"


def test_progress_bar_shape():
    bar = progress_string({"current": 25, "total": 100})
    assert bar.startswith("[" + "=" * 12 + ">" + " " * 37 + "]")
    assert bar.endswith("25B/100B")
    assert progress_string({"current": 100, "total": 100}).startswith("[" + "=" * 50 + "]")
    assert progress_string({}) == ""
    assert progress_string({"current": 5_000_000}).strip() == "5MB"
    assert with_progress_field({"status": "Downloading", "progressDetail": {"current": 1, "total": 2}})["progress"]


EVENTS = [
    {"status": "Pulling from library/busybox", "id": "latest"},
    {"status": "Pulling fs layer", "id": "aaa"},
    {"status": "Pulling fs layer", "id": "bbb"},
    {"status": "Downloading", "id": "aaa", "progressDetail": {"current": 10, "total": 100}},
    {"status": "Downloading", "id": "aaa", "progressDetail": {"current": 50, "total": 100}},
    {"status": "Download complete", "id": "aaa"},
    {"status": "Digest: sha256:abc"},
]


def test_plain_output_prints_each_status_change_once():
    out = io.StringIO()
    printer = ProgressPrinter(out, tty=False)
    for event in EVENTS:
        printer(event)
    assert out.getvalue().splitlines() == [
        "latest: Pulling from library/busybox", "aaa: Pulling fs layer", "bbb: Pulling fs layer",
        "aaa: Downloading", "aaa: Download complete", "Digest: sha256:abc"]


def test_tty_output_rewrites_the_layer_line_in_place():
    out = io.StringIO()
    printer = ProgressPrinter(out, tty=True)
    for event in EVENTS[:4]:
        printer(event)
    # aaa is two lines above the bottom (bbb was printed after it): up 2, rewrite, down 2.
    assert out.getvalue().endswith("\x1b[2A\x1b[2K\raaa: Downloading " + progress_string(EVENTS[3]["progressDetail"])
                                   + "\x1b[2B\r")


def test_an_error_event_raises():
    with pytest.raises(RuntimeError, match="manifest unknown"):
        ProgressPrinter(io.StringIO(), tty=False)({"errorDetail": {"message": "manifest unknown"},
                                                   "error": "manifest unknown"})
