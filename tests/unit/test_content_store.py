"""The content store: verified, atomic, resumable writes; the registry client's pure helpers."""

from __future__ import annotations

import hashlib
import os

import pytest

from orlop.images.content import ContentError, ContentStore, DigestMismatch, sha256_digest
from orlop.images.registry import is_insecure_host, parse_challenge


def test_put_and_read(tmp_path):
    store = ContentStore(str(tmp_path))
    digest = store.put(b"hello")
    assert digest == "sha256:" + hashlib.sha256(b"hello").hexdigest()
    assert store.read(digest) == b"hello" and store.size(digest) == 5
    assert list(store.walk()) == [digest]
    assert os.stat(store.path(digest)).st_mode & 0o777 == 0o400
    assert store.put(b"hello") == digest, "stored once"


def test_wrong_digest_is_refused_and_nothing_is_visible(tmp_path):
    store = ContentStore(str(tmp_path))
    wrong = sha256_digest(b"other")
    with store.writer("ref1", wrong, 5) as w, pytest.raises(DigestMismatch, match="expected"):
        w.write(b"hello")
        w.commit()
    assert not store.exists(wrong) and list(store.walk()) == []


def test_more_data_than_announced(tmp_path):
    store = ContentStore(str(tmp_path))
    with store.writer("ref2", None, 3) as w, pytest.raises(ContentError, match="more data"):
        w.write(b"hello")


def test_interrupted_write_resumes(tmp_path):
    store = ContentStore(str(tmp_path))
    data = os.urandom(3 << 20)
    digest = sha256_digest(data)
    with store.writer("layer", digest, len(data)) as w:
        w.write(data[:1 << 20])  # then the process "dies": no commit
    with store.writer("layer", digest, len(data)) as w:
        assert w.offset == 1 << 20
        w.write(data[w.offset:])
        w.commit()
    assert store.read(digest) == data
    assert os.listdir(store.ingests) == []


def test_second_writer_finds_it_committed(tmp_path):
    store = ContentStore(str(tmp_path))
    digest = store.put(b"shared layer")
    with store.writer("again", digest, 12) as w:
        assert w.committed


def test_prune_ingests(tmp_path):
    store = ContentStore(str(tmp_path))
    with store.writer("abandoned", None, None) as w:
        w.write(b"partial")
    assert store.prune_ingests() == 1
    assert os.listdir(store.ingests) == []


def test_invalid_digest(tmp_path):
    with pytest.raises(ContentError, match="invalid digest"):
        ContentStore(str(tmp_path)).path("md5:abc")


@pytest.mark.parametrize(("host", "plain"), [("localhost:5000", True), ("127.0.0.1:5000", True),
                                             ("127.5.5.5", True), ("[::1]:5000", True),
                                             ("registry-1.docker.io", False), ("10.0.0.1:5000", False)])
def test_insecure_hosts(host, plain):
    assert is_insecure_host(host) is plain
    assert is_insecure_host("myreg:5000", {"myreg:5000"})


def test_parse_challenge():
    scheme, params = parse_challenge('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
                                     'scope="repository:library/busybox:pull"')
    assert scheme == "bearer"
    assert params == {"realm": "https://auth.docker.io/token", "service": "registry.docker.io",
                      "scope": "repository:library/busybox:pull"}
    assert parse_challenge('Basic realm="Registry"') == ("basic", {"realm": "Registry"})
