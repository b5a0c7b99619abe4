"""Image references normalised as Docker does."""

from __future__ import annotations

import pytest

from orlop.images.reference import InvalidReference, parse

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(("text", "full", "familiar"), [
    ("busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36"),
    ("library/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("docker.io/library/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("index.docker.io/library/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("user/app", "docker.io/user/app:latest", "user/app:latest"),
    ("user/app/sub:v1", "docker.io/user/app/sub:v1", "user/app/sub:v1"),
    ("localhost/app", "localhost/app:latest", "localhost/app:latest"),
    ("localhost:5000/app:1", "localhost:5000/app:1", "localhost:5000/app:1"),
    ("127.0.0.1:5000/ns/app", "127.0.0.1:5000/ns/app:latest", "127.0.0.1:5000/ns/app:latest"),
    ("[::1]:5000/app", "[::1]:5000/app:latest", "[::1]:5000/app:latest"),
    ("registry.example.com/a-b/c_d.e__f", "registry.example.com/a-b/c_d.e__f:latest",
     "registry.example.com/a-b/c_d.e__f:latest"),
    (f"busybox@{DIGEST}", f"docker.io/library/busybox@{DIGEST}", f"busybox@{DIGEST}"),
    (f"busybox:1@{DIGEST}", f"docker.io/library/busybox:1@{DIGEST}", f"busybox:1@{DIGEST}"),
    ("Registry.Example.com/app", "Registry.Example.com/app:latest", "Registry.Example.com/app:latest"),
])
def test_normalised_forms(text, full, familiar):
    ref = parse(text)
    assert str(ref) == full
    assert ref.familiar == familiar


@pytest.mark.parametrize(("text", "message"), [
    ("", "empty"),
    ("Busybox", "lowercase"),
    ("user/App", "lowercase"),
    ("a" * 64, "64-byte hexadecimal"),
    ("busybox:", "invalid reference format"),
    ("busybox@sha256:abc", "invalid reference format"),
    (f"busybox@sha256:{'A' * 64}", "64 lowercase"),
    ("-busybox", "invalid reference format"),
    ("busybox:tag with space", "invalid reference format"),
    ("bad..name/x", "invalid reference format"),
    ("a/" + "b" * 260, "longer than 255"),
    ("busybox::tag", "invalid reference format"),
])
def test_invalid_references(text, message):
    with pytest.raises(InvalidReference, match=message):
        parse(text)


def test_registry_host_and_no_default_tag():
    assert parse("busybox").registry_host == "registry-1.docker.io"
    assert parse("localhost:5000/x").registry_host == "localhost:5000"
    assert parse("busybox", default_tag=False).tag is None
    assert str(parse("busybox").with_tag("2")) == "docker.io/library/busybox:2"
