"""The Bearer token flow (as Docker Hub's) and a download resumed after the
connection broke mid-blob, against tests/fake_registry.py."""

from __future__ import annotations

import asyncio
import io
import json
import os
import tarfile
import time

import pytest
from fake_registry import FakeRegistry

from orlop.images.content import ContentStore
from orlop.images.pull import pull
from orlop.images.reference import parse
from orlop.images.store import ImageStore


def layer_with(name: str, size: int) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo(name)
        data = os.urandom(size)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture
def image():
    layers = [layer_with("a.bin", 3 << 20), layer_with("b.bin", 1 << 20)]
    import hashlib

    config = {"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
              "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(d).hexdigest() for d in layers]}}
    return layers, config


def test_bearer_token_flow_and_token_reuse(image, tmp_path):
    registry = FakeRegistry("team/app", *image)
    try:
        record = asyncio.run(pull(parse(f"{registry.host}/team/app:1"), ContentStore(str(tmp_path / "c")),
                                  ImageStore(str(tmp_path / "i"))))
        assert record.config
        # One token for the repository's pull scope, reused for the manifest and every blob.
        assert registry.tokens_issued == ["repository:team/app:pull"]
    finally:
        registry.stop()


def test_download_resumes_with_range_after_a_broken_connection(image, tmp_path):
    registry = FakeRegistry("team/app", *image, break_after=1 << 20)
    content = ContentStore(str(tmp_path / "c"))
    try:
        record = asyncio.run(pull(parse(f"{registry.host}/team/app:1"), content, ImageStore(str(tmp_path / "i"))))
    finally:
        registry.stop()
    assert registry.range_requests, "the second request asked for the rest only"
    assert int(registry.range_requests[0].removeprefix("bytes=").rstrip("-")) > 0
    manifest = json.loads(content.read(record.manifest))
    for layer in manifest["layers"]:
        assert content.size(layer["digest"]) == layer["size"]
    assert os.listdir(content.ingests) == []


PULL_IN_CHILD = """
import asyncio, sys
from orlop.images.content import ContentStore
from orlop.images.pull import pull
from orlop.images.reference import parse
from orlop.images.store import ImageStore
asyncio.run(pull(parse(sys.argv[1]), ContentStore(sys.argv[2]), ImageStore(sys.argv[3])))
"""


def test_pull_killed_mid_blob_leaves_a_consistent_store_and_resumes(image, tmp_path):
    """kill -9 of a pulling process: no name points at missing content, every committed blob
    verifies, and the next pull picks the partial download up with a Range request."""
    import hashlib
    import signal
    import subprocess
    import sys

    registry = FakeRegistry("team/app", *image, stall_after=1 << 20)
    content_dir, images_dir = str(tmp_path / "c"), str(tmp_path / "i")
    ref = f"{registry.host}/team/app:1"
    try:
        child = subprocess.Popen([sys.executable, "-c", PULL_IN_CHILD, ref, content_dir, images_dir])
        assert registry.stalled.wait(30), "the pull reached the middle of a blob"
        time.sleep(0.3)  # let the partial data reach the ingest file
        child.send_signal(signal.SIGKILL)
        assert child.wait(10) == -signal.SIGKILL

        content, images = ContentStore(content_dir), ImageStore(images_dir)
        assert images.list() == []
        for digest in content.walk():
            data = open(content.path(digest), "rb").read()
            assert "sha256:" + hashlib.sha256(data).hexdigest() == digest
        assert os.listdir(content.ingests), "the partial download is kept for resuming"

        registry.release()
        record = asyncio.run(pull(parse(ref), content, images))
    finally:
        registry.stop()
    assert registry.range_requests and registry.range_requests[0] != "bytes=0-"
    manifest = json.loads(content.read(record.manifest))
    for layer in manifest["layers"]:
        assert content.size(layer["digest"]) == layer["size"]
    assert os.listdir(content.ingests) == []
