"""Image references normalised as Docker does.

The cases come from distribution/reference's own tests (normalize_test.go: TestValidateReferenceName,
TestValidateRemoteName, TestParseRepositoryInfo, TestNormalizedSplitHostname, TestParseAnyReference,
TestParseDockerRef, TestParseReferenceWithTagAndDigest; reference_test.go: TestReferenceParse), run
through ParseNormalizedNamed + TagNameOnly, which is what docker pull/run/tag do.
"""

from __future__ import annotations

import pickle

import pytest

from orlop.images.reference import InvalidReference, Reference, parse

F64 = "f" * 64
SHA = "sha256:" + F64
SHA_E66 = "sha256:e6693c20186f837fc393390135d8a598a96a833917917789d63766cab6c59582"
SHA_86E = "sha256:86e0e091d0da6bde2456dbb48306f3956bbeb2eae1b5b9a43045843f69fe4aaa"
SHA_DBC = "sha256:dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c"
SHA512 = "sha512:" + "f" * 128
HEX64 = "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a"
SONG = "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev"  # 64 characters, not hex
LONG_PATH = "a/" * 127 + "a"  # 255 characters: the longest path allowed


# (input, normalised full form, familiar form); the default tag is added.
VALID = [
    # TestValidateReferenceName
    ("docker/docker", "docker.io/docker/docker:latest", "docker/docker:latest"),
    ("library/debian", "docker.io/library/debian:latest", "debian:latest"),
    ("debian", "docker.io/library/debian:latest", "debian:latest"),
    ("docker.io/docker/docker", "docker.io/docker/docker:latest", "docker/docker:latest"),
    ("docker.io/library/debian", "docker.io/library/debian:latest", "debian:latest"),
    ("docker.io/debian", "docker.io/library/debian:latest", "debian:latest"),
    ("index.docker.io/docker/docker", "docker.io/docker/docker:latest", "docker/docker:latest"),
    ("index.docker.io/library/debian", "docker.io/library/debian:latest", "debian:latest"),
    ("index.docker.io/debian", "docker.io/library/debian:latest", "debian:latest"),
    ("127.0.0.1:5000/docker/docker", "127.0.0.1:5000/docker/docker:latest", "127.0.0.1:5000/docker/docker:latest"),
    ("127.0.0.1:5000/library/debian", "127.0.0.1:5000/library/debian:latest",
     "127.0.0.1:5000/library/debian:latest"),
    ("127.0.0.1:5000/debian", "127.0.0.1:5000/debian:latest", "127.0.0.1:5000/debian:latest"),
    ("192.168.0.1", "docker.io/library/192.168.0.1:latest", "192.168.0.1:latest"),
    ("192.168.0.1:80", "docker.io/library/192.168.0.1:80", "192.168.0.1:80"),  # ":80" is a tag here
    ("192.168.0.1:8/debian", "192.168.0.1:8/debian:latest", "192.168.0.1:8/debian:latest"),
    ("192.168.0.2:25000/debian", "192.168.0.2:25000/debian:latest", "192.168.0.2:25000/debian:latest"),
    (SONG, f"docker.io/library/{SONG}:latest", f"{SONG}:latest"),
    ("[fc00::1]:5000/docker", "[fc00::1]:5000/docker:latest", "[fc00::1]:5000/docker:latest"),
    ("[fc00::1]:5000/docker/docker", "[fc00::1]:5000/docker/docker:latest", "[fc00::1]:5000/docker/docker:latest"),
    ("[fc00:1:2:3:4:5:6:7]:5000/library/debian", "[fc00:1:2:3:4:5:6:7]:5000/library/debian:latest",
     "[fc00:1:2:3:4:5:6:7]:5000/library/debian:latest"),
    (f"docker.io/{HEX64}", f"docker.io/library/{HEX64}:latest", f"{HEX64}:latest"),  # a domain disambiguates
    ("Docker/docker", "Docker/docker:latest", "Docker/docker:latest"),  # upper case: taken for a registry
    ("DOCKER/docker", "DOCKER/docker:latest", "DOCKER/docker:latest"),
    # TestValidateRemoteName
    ("docker-rules/docker", "docker.io/docker-rules/docker:latest", "docker-rules/docker:latest"),
    ("docker---rules/docker", "docker.io/docker---rules/docker:latest", "docker---rules/docker:latest"),
    ("doc/docker", "docker.io/doc/docker:latest", "doc/docker:latest"),
    ("d/docker", "docker.io/d/docker:latest", "d/docker:latest"),
    ("jess/t", "docker.io/jess/t:latest", "jess/t:latest"),
    ("dock__er/docker", "docker.io/dock__er/docker:latest", "dock__er/docker:latest"),
    # TestParseDockerRef (ParseNormalizedNamed + TagNameOnly keeps both tag and digest)
    ("busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("busybox:latest", "docker.io/library/busybox:latest", "busybox:latest"),
    (f"busybox@{SHA_E66}", f"docker.io/library/busybox@{SHA_E66}", f"busybox@{SHA_E66}"),
    ("library/busybox:latest", "docker.io/library/busybox:latest", "busybox:latest"),
    ("docker.io/busybox:latest", "docker.io/library/busybox:latest", "busybox:latest"),
    ("gcr.io/library/busybox", "gcr.io/library/busybox:latest", "gcr.io/library/busybox:latest"),
    (f"gcr.io/library/busybox:latest@{SHA_E66}", f"gcr.io/library/busybox:latest@{SHA_E66}",
     f"gcr.io/library/busybox:latest@{SHA_E66}"),
    # TestParseReferenceWithTagAndDigest
    (f"busybox:latest@{SHA_86E}", f"docker.io/library/busybox:latest@{SHA_86E}", f"busybox:latest@{SHA_86E}"),
    # TestParseAnyReference (the named cases)
    ("redis", "docker.io/library/redis:latest", "redis:latest"),
    (f"redis@{SHA_DBC}", f"docker.io/library/redis@{SHA_DBC}", f"redis@{SHA_DBC}"),
    ("dmcgowan/myapp:latest", "docker.io/dmcgowan/myapp:latest", "dmcgowan/myapp:latest"),
    (f"docker.io/dmcgowan/myapp@{SHA_DBC}", f"docker.io/dmcgowan/myapp@{SHA_DBC}", f"dmcgowan/myapp@{SHA_DBC}"),
    (HEX64[:63], f"docker.io/library/{HEX64[:63]}:latest", f"{HEX64[:63]}:latest"),  # 63 hex: a name
    ("dbcc1", "docker.io/library/dbcc1:latest", "dbcc1:latest"),
    # "sha256:<hex>" is a name with a 64-character tag to ParseNormalizedNamed
    (SHA_DBC, f"docker.io/library/{SHA_DBC}", SHA_DBC),
    # TestReferenceParse, normalised
    ("test_com", "docker.io/library/test_com:latest", "test_com:latest"),
    ("test.com:tag", "docker.io/library/test.com:tag", "test.com:tag"),
    ("test.com:5000", "docker.io/library/test.com:5000", "test.com:5000"),
    ("test.com/repo:tag", "test.com/repo:tag", "test.com/repo:tag"),
    ("test:5000/repo", "test:5000/repo:latest", "test:5000/repo:latest"),
    ("test:5000/repo:tag", "test:5000/repo:tag", "test:5000/repo:tag"),
    (f"test:5000/repo@{SHA}", f"test:5000/repo@{SHA}", f"test:5000/repo@{SHA}"),
    (f"test:5000/repo:tag@{SHA}", f"test:5000/repo:tag@{SHA}", f"test:5000/repo:tag@{SHA}"),
    ("lowercase:Uppercase", "docker.io/library/lowercase:Uppercase", "lowercase:Uppercase"),
    (LONG_PATH + ":tag-puts-this-over-max", f"docker.io/{LONG_PATH}:tag-puts-this-over-max",
     f"{LONG_PATH}:tag-puts-this-over-max"),
    ("sub-dom1.foo.com/bar/baz/quux", "sub-dom1.foo.com/bar/baz/quux:latest", "sub-dom1.foo.com/bar/baz/quux:latest"),
    ("sub-dom1.foo.com/bar/baz/quux:some-long-tag", "sub-dom1.foo.com/bar/baz/quux:some-long-tag",
     "sub-dom1.foo.com/bar/baz/quux:some-long-tag"),
    ("b.gcr.io/test.example.com/my-app:test.example.com", "b.gcr.io/test.example.com/my-app:test.example.com",
     "b.gcr.io/test.example.com/my-app:test.example.com"),
    ("xn--n3h.com/myimage:xn--n3h.com", "xn--n3h.com/myimage:xn--n3h.com", "xn--n3h.com/myimage:xn--n3h.com"),
    (f"xn--7o8h.com/myimage:xn--7o8h.com@{SHA512}", f"xn--7o8h.com/myimage:xn--7o8h.com@{SHA512}",
     f"xn--7o8h.com/myimage:xn--7o8h.com@{SHA512}"),
    ("foo_bar.com:8080", "docker.io/library/foo_bar.com:8080", "foo_bar.com:8080"),
    ("foo/foo_bar.com:8080", "docker.io/foo/foo_bar.com:8080", "foo/foo_bar.com:8080"),
    ("192.168.1.1:tag", "docker.io/library/192.168.1.1:tag", "192.168.1.1:tag"),
    ("192.168.1.1/repo", "192.168.1.1/repo:latest", "192.168.1.1/repo:latest"),
    ("192.168.1.1:5000/repo:5050", "192.168.1.1:5000/repo:5050", "192.168.1.1:5000/repo:5050"),
    ("[2001:db8::1]/repo", "[2001:db8::1]/repo:latest", "[2001:db8::1]/repo:latest"),
    ("[2001:db8:1:2:3:4:5:6]/repo:tag", "[2001:db8:1:2:3:4:5:6]/repo:tag", "[2001:db8:1:2:3:4:5:6]/repo:tag"),
    ("[2001:db8::1]:5000/repo:tag", "[2001:db8::1]:5000/repo:tag", "[2001:db8::1]:5000/repo:tag"),
    (f"[2001:db8::1]:5000/repo:tag@{SHA}", f"[2001:db8::1]:5000/repo:tag@{SHA}",
     f"[2001:db8::1]:5000/repo:tag@{SHA}"),
    ("[2001:db8::]:5000/repo", "[2001:db8::]:5000/repo:latest", "[2001:db8::]:5000/repo:latest"),
    ("[::1]:5000/repo", "[::1]:5000/repo:latest", "[::1]:5000/repo:latest"),
    # localhost, ports, upper-case registries, separators, tags, digests
    ("localhost", "docker.io/library/localhost:latest", "localhost:latest"),  # one component: Docker Hub
    ("localhost:5000", "docker.io/library/localhost:5000", "localhost:5000"),  # ... with tag "5000"
    ("localhost/app", "localhost/app:latest", "localhost/app:latest"),
    ("localhost:5000/app:1", "localhost:5000/app:1", "localhost:5000/app:1"),
    (f"localhost:5000/app@{SHA}", f"localhost:5000/app@{SHA}", f"localhost:5000/app@{SHA}"),
    ("Registry.Example.com/app", "Registry.Example.com/app:latest", "Registry.Example.com/app:latest"),
    ("INDEX.DOCKER.IO/foo", "INDEX.DOCKER.IO/foo:latest", "INDEX.DOCKER.IO/foo:latest"),  # exact match only
    ("registry.example.com/a-b/c_d.e__f--g", "registry.example.com/a-b/c_d.e__f--g:latest",
     "registry.example.com/a-b/c_d.e__f--g:latest"),
    ("docker.io/library/foo/bar", "docker.io/library/foo/bar:latest", "library/foo/bar:latest"),
    ("user/app/sub:v1", "docker.io/user/app/sub:v1", "user/app/sub:v1"),
    ("busybox:_tag", "docker.io/library/busybox:_tag", "busybox:_tag"),
    ("busybox:" + "a" * 128, "docker.io/library/busybox:" + "a" * 128, "busybox:" + "a" * 128),
    ("busybox:1.36.1-musl_X", "docker.io/library/busybox:1.36.1-musl_X", "busybox:1.36.1-musl_X"),
    (HEX64 + ":tag", f"docker.io/library/{HEX64}:tag", f"{HEX64}:tag"),
    ("busybox@sha384:" + "a" * 96, "docker.io/library/busybox@sha384:" + "a" * 96, "busybox@sha384:" + "a" * 96),
]


@pytest.mark.parametrize(("text", "full", "familiar"), VALID)
def test_normalised_forms(text, full, familiar):
    ref = parse(text)
    assert str(ref) == full
    assert ref.familiar == familiar
    assert parse(full) == ref  # the normalised form is a fixed point
    assert parse(familiar) == ref


# TestParseRepositoryInfo: every spelling gives the same domain, path, full and familiar name.
REPOSITORY_INFO = [
    # (spellings, domain, path, familiar name)
    (["fooo/bar", "docker.io/fooo/bar", "index.docker.io/fooo/bar"], "docker.io", "fooo/bar", "fooo/bar"),
    (["ubuntu", "docker.io/library/ubuntu", "library/ubuntu"], "docker.io", "library/ubuntu", "ubuntu"),
    (["nonlibrary/ubuntu", "docker.io/nonlibrary/ubuntu"], "docker.io", "nonlibrary/ubuntu", "nonlibrary/ubuntu"),
    (["other/library", "docker.io/other/library"], "docker.io", "other/library", "other/library"),
    (["127.0.0.1:8000/private/moonbase"], "127.0.0.1:8000", "private/moonbase", "127.0.0.1:8000/private/moonbase"),
    (["127.0.0.1:8000/privatebase"], "127.0.0.1:8000", "privatebase", "127.0.0.1:8000/privatebase"),
    (["example.com/private/moonbase"], "example.com", "private/moonbase", "example.com/private/moonbase"),
    (["example.com/privatebase"], "example.com", "privatebase", "example.com/privatebase"),
    (["example.com:8000/private/moonbase"], "example.com:8000", "private/moonbase",
     "example.com:8000/private/moonbase"),
    (["example.com:8000/privatebasee"], "example.com:8000", "privatebasee", "example.com:8000/privatebasee"),
    (["ubuntu-12.04-base", "docker.io/library/ubuntu-12.04-base", "index.docker.io/library/ubuntu-12.04-base"],
     "docker.io", "library/ubuntu-12.04-base", "ubuntu-12.04-base"),
    (["foo", "docker.io/library/foo", "docker.io/foo"], "docker.io", "library/foo", "foo"),
    (["library/foo/bar", "docker.io/library/foo/bar"], "docker.io", "library/foo/bar", "library/foo/bar"),
    (["store/foo/bar", "docker.io/store/foo/bar"], "docker.io", "store/foo/bar", "store/foo/bar"),
    (["Foo/bar"], "Foo", "bar", "Foo/bar"),
    (["FOO/bar"], "FOO", "bar", "FOO/bar"),
    # TestNormalizedSplitHostname
    (["test.com/foo"], "test.com", "foo", "test.com/foo"),
    (["test_com/foo"], "docker.io", "test_com/foo", "test_com/foo"),
    (["docker/migrator"], "docker.io", "docker/migrator", "docker/migrator"),
    (["test.com:8080/foo"], "test.com:8080", "foo", "test.com:8080/foo"),
    (["test-com:8080/foo"], "test-com:8080", "foo", "test-com:8080/foo"),
    (["xn--n3h.com/foo"], "xn--n3h.com", "foo", "xn--n3h.com/foo"),
    (["xn--n3h.com:18080/foo"], "xn--n3h.com:18080", "foo", "xn--n3h.com:18080/foo"),
]


@pytest.mark.parametrize(("spellings", "domain", "path", "familiar"), REPOSITORY_INFO,
                         ids=[case[0][0] for case in REPOSITORY_INFO])
def test_repository_info(spellings, domain, path, familiar):
    for text in spellings:
        ref = parse(text, default_tag=False)
        assert (ref.domain, ref.path, ref.tag, ref.digest) == (domain, path, None, None), text
        assert ref.name == str(ref) == f"{domain}/{path}"
        assert ref.familiar == ref.familiar_name == familiar


# (input, words in our message, Docker's own message)
FORMAT = "invalid reference format"
INVALID = [
    # TestValidateReferenceName
    ("https://github.com/docker/docker", 'invalid registry host "https:"', FORMAT),
    ("docker/Docker", "repository name (docker/Docker) must be lowercase",
     "invalid reference format: repository name (docker/Docker) must be lowercase"),
    ("-docker", 'invalid path component "-docker"', FORMAT),
    ("-docker/docker", 'invalid path component "-docker"', FORMAT),
    ("-docker.io/docker/docker", 'invalid registry host "-docker.io"', FORMAT),
    ("docker///docker", "empty path component", FORMAT),
    ("docker.io/docker/Docker", "repository name (docker/Docker) must be lowercase",
     "invalid reference format: repository name (docker/Docker) must be lowercase"),
    ("docker.io/docker///docker", "empty path component", FORMAT),
    ("[fc00::1]", "invalid tag", FORMAT),  # a name "docker.io/library/[fc00" with tag ":1]"
    ("[fc00::1]:5000", "invalid", FORMAT),
    ("fc00::1:5000/debian", 'invalid registry host "fc00::1:5000"', FORMAT),
    ("[fe80::1%eth0]:5000/debian", 'invalid registry host "[fe80::1%eth0]:5000"', FORMAT),
    ("[2001:db8:3:4::192.0.2.33]:5000/debian", "invalid registry host", FORMAT),
    (HEX64, "cannot specify 64-byte hexadecimal strings",
     f"invalid repository name ({HEX64}), cannot specify 64-byte hexadecimal strings"),
    # TestValidateRemoteName
    ("docker-/docker", 'invalid path component "docker-"', FORMAT),
    ("-docker-/docker", 'invalid path component "-docker-"', FORMAT),
    ("____/____", 'invalid path component "____"', FORMAT),
    ("_docker/_docker", 'invalid path component "_docker"', FORMAT),
    ("dock..er/docker", 'invalid registry host "dock..er"', FORMAT),
    ("dock_.er/docker", 'invalid registry host "dock_.er"', FORMAT),
    ("dock-.er/docker", 'invalid registry host "dock-.er"', FORMAT),
    ("dock___er/docker", 'invalid path component "dock___er"', FORMAT),
    ("docker/", "empty path component", FORMAT),
    ("_".join(["this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255"] * 4) + "/docker",
     "must not be more than 255 characters", "repository name must not be more than 255 characters"),
    # TestReferenceParse, normalised
    ("", "empty reference", FORMAT),
    (":justtag", "empty path component", FORMAT),
    (f"@{SHA}", "empty path component", FORMAT),
    ("repo@sha256:" + "f" * 34, "sha256 needs exactly 64 lowercase hex digits", "invalid checksum digest format"),
    (f"validname@invaliddigest:{F64}", 'unsupported digest algorithm "invaliddigest"', "unsupported digest algorithm"),
    ("Uppercase:tag", "repository name (library/Uppercase) must be lowercase",
     "invalid reference format: repository name (library/Uppercase) must be lowercase"),
    ("test:5000/Uppercase/lowercase:tag", "repository name (Uppercase/lowercase) must be lowercase",
     "invalid reference format: repository name (Uppercase/lowercase) must be lowercase"),
    ("a/" * 128 + "a:tag", "must not be more than 255 characters", "repository name must not be more than 255 characters"),
    ("domain/" + "a" * 256 + ":tag", "must not be more than 255 characters",
     "repository name must not be more than 255 characters"),
    ("aa/asdf$$^/aa", 'invalid path component "asdf$$^"', FORMAT),
    ("[2001:db8::1]:tag", "invalid", FORMAT),
    ("[fe80::1%eth0]:5000/repo", "invalid registry host", FORMAT),
    ("[fe80::1%@invalidzone]:5000/repo", "invalid digest", FORMAT),
    # tags
    ("busybox:", 'invalid tag ""', FORMAT),
    ("busybox::tag", 'invalid tag ":tag"', FORMAT),
    ("busybox:.tag", 'invalid tag ".tag"', FORMAT),
    ("busybox:-tag", 'invalid tag "-tag"', FORMAT),
    ("busybox:tag with space", 'invalid tag "tag with space"', FORMAT),
    ("busybox:" + "a" * 129, "invalid tag", FORMAT),
    ("busybox:t\u00e0g", "invalid tag", FORMAT),  # \w is ASCII-only, as in Go
    ("busybox:latest\n", "invalid tag", FORMAT),  # the end of the text, not of a line
    ("busybox:a/b", "invalid", FORMAT),
    # digests
    ("busybox@sha256:abc", 'invalid digest "sha256:abc"', FORMAT),
    (f"busybox@sha256:{'A' * 64}", "64 lowercase hex digits", "invalid checksum digest format"),
    (f"busybox@sha256:{F64}0", "64 lowercase hex digits", "invalid checksum digest format"),
    (f"busybox@sha512:{F64}", "128 lowercase hex digits", "invalid checksum digest format"),
    (f"busybox@SHA256:{F64}", "repository name (library/busybox@SHA256) must be lowercase",
     "invalid reference format: repository name (library/busybox@SHA256) must be lowercase"),
    (f"busybox@Sha.256:{F64}", "must be lowercase", None),
    (f"app:1@sha256:{F64}@sha256:{F64}", "invalid digest", FORMAT),
    (f"busybox@{F64}", "invalid digest", FORMAT),
    # names
    ("Busybox", "repository name (library/Busybox) must be lowercase",
     "invalid reference format: repository name (library/Busybox) must be lowercase"),
    ("Foo_Bar/app", "repository name must be lowercase", "repository name must be lowercase"),
    ("b\u00fcsybox", 'invalid path component "b\u00fcsybox"', FORMAT),
    ("busy box", 'invalid path component "busy box"', FORMAT),
    ("localhost:5000/", "empty path component", FORMAT),
    ("/busybox", "empty path component", FORMAT),
    # Docker keeps these without a registry; refused here (see the module docstring)
    ("foo_bar.com/app", '"foo_bar.com" is taken for a registry', None),
    ("foo.bar_baz:1/app", 'invalid registry host "foo.bar_baz:1"', FORMAT),  # Docker refuses this one too
]


@pytest.mark.parametrize(("text", "words", "docker_message"), INVALID)
def test_invalid_references(text, words, docker_message):
    with pytest.raises(InvalidReference) as caught:
        parse(text)
    error = caught.value
    assert str(error).startswith("invalid reference " + ('"' + text[:300]).replace("\\", "\\\\"))
    assert words in str(error)
    assert error.text == text
    if docker_message is not None:
        assert error.docker_message == docker_message
    assert isinstance(error, ValueError)


def test_lowercase_message_names_input():
    with pytest.raises(InvalidReference, match=r'^invalid reference "Busybox": repository name \(library/Busybox\) '
                                               r"must be lowercase$"):
        parse("Busybox")


def test_no_default_tag():
    ref = parse("busybox", default_tag=False)
    assert (ref.domain, ref.path, ref.tag, ref.digest) == ("docker.io", "library/busybox", None, None)
    assert str(ref) == "docker.io/library/busybox"
    assert ref.familiar == "busybox"
    assert str(parse("busybox:1", default_tag=False)) == "docker.io/library/busybox:1"
    assert parse(f"busybox@{SHA}").tag is None  # a digest is never given a default tag


def test_fields_and_properties():
    ref = parse(f"localhost:5000/ns/app:v1@{SHA}")
    assert (ref.domain, ref.path, ref.tag, ref.digest) == ("localhost:5000", "ns/app", "v1", SHA)
    assert ref.name == "localhost:5000/ns/app"
    assert ref.familiar_name == "localhost:5000/ns/app"
    assert ref.registry_host == "localhost:5000"
    assert parse("busybox").registry_host == "registry-1.docker.io"
    assert parse("index.docker.io/user/app").registry_host == "registry-1.docker.io"
    assert parse("[::1]:5000/app").registry_host == "[::1]:5000"
    assert repr(parse("busybox")) == "Reference('docker.io/library/busybox:latest')"


def test_immutable_hashable_picklable():
    ref = parse("busybox")
    with pytest.raises(AttributeError):
        ref.tag = "other"
    with pytest.raises(AttributeError):
        del ref.path
    with pytest.raises(AttributeError):
        ref.extra = 1
    assert not hasattr(ref, "__dict__")
    assert ref == parse("docker.io/library/busybox:latest") == Reference("docker.io", "library/busybox", "latest")
    assert ref != parse("busybox", default_tag=False)
    assert ref != "docker.io/library/busybox:latest"
    assert len({ref, parse("library/busybox"), parse("index.docker.io/busybox:latest")}) == 1
    assert pickle.loads(pickle.dumps(ref)) == ref


def test_with_tag_and_digest():
    ref = parse("busybox")
    assert str(ref.with_tag("1.36")) == "docker.io/library/busybox:1.36"
    assert str(ref.with_tag("TAG5")) == "docker.io/library/busybox:TAG5"
    assert ref.tag == "latest"  # unchanged
    digested = ref.with_digest(SHA)
    assert str(digested) == f"docker.io/library/busybox:latest@{SHA}"  # WithDigest keeps the tag
    assert str(digested.with_tag("2")) == f"docker.io/library/busybox:2@{SHA}"  # WithTag keeps the digest
    assert str(parse("busybox", default_tag=False).with_digest(SHA)) == f"docker.io/library/busybox@{SHA}"
    assert parse("test.com:8000/foo").with_tag("tag4").familiar == "test.com:8000/foo:tag4"
    for bad in ("-foo", "", ".x", "a" * 129, "a:b", "t\u00e0g"):
        with pytest.raises(InvalidReference, match="invalid tag") as caught:
            ref.with_tag(bad)
        assert caught.value.docker_message == "invalid tag format"
    for bad, message in (("foo", "invalid digest"), ("sha256:abc", "invalid digest"),
                         (f"sha256:{'A' * 64}", "64 lowercase hex"), (f"md5:{F64}", "unsupported digest algorithm")):
        with pytest.raises(InvalidReference, match=message):
            ref.with_digest(bad)


def test_not_a_string():
    with pytest.raises(TypeError):
        parse(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        parse(b"busybox")  # type: ignore[arg-type]
