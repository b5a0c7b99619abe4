""".dockerignore as Docker reads and applies it (orlop.build.ignore): the examples of Docker's
documentation, moby/patternmatcher's rules (`**`, exceptions, parent directories), Go's
filepath.Match syntax, and the walk the docker CLI makes to build the context."""

from __future__ import annotations

import os

import pytest

from orlop.build.ignore import Matcher, go_clean, go_match, keep_build_files, load, read_patterns


def excluded(patterns: list[str], *paths: str) -> list[bool]:
    m = Matcher(patterns)
    return [m.excluded(p) for p in paths]


# --- the documentation's examples ------------------------------------------------------------

def test_docs_example_file():
    m = Matcher(["# comment", "*/temp*", "*/*/temp*", "temp?"])
    assert m.excluded("somedir/temporary.txt") and m.excluded("somedir/temp")
    assert m.excluded("somedir/temp/inside.txt")                       # below an excluded directory
    assert m.excluded("somedir/subdir/temporary.txt")
    assert m.excluded("tempa") and m.excluded("tempb")
    assert not m.excluded("temporary.txt")                              # */temp* needs one directory
    assert not m.excluded("a/b/c/temp")                                 # */*/temp* exactly two
    assert not m.excluded("temp")                                       # temp? needs one more character
    assert not m.excluded("# comment")


def test_docs_double_star():
    m = Matcher(["**/*.go"])
    assert m.excluded("main.go") and m.excluded("a/b/c/x.go")
    assert not m.excluded("main.goo") and not m.excluded("go")


def test_docs_exceptions_last_match_wins():
    assert excluded(["*.md", "!README.md"], "CHANGES.md", "README.md", "docs/x.md") == [True, False, False]
    assert excluded(["*.md", "!README*.md", "README-secret.md"],
                    "README.md", "README-secret.md", "README-2.md", "x.md") == [False, True, False, True]
    assert excluded(["*.md", "README-secret.md", "!README*.md"],
                    "README.md", "README-secret.md", "x.md") == [False, False, True]


def test_docs_leading_and_trailing_slashes_and_dot():
    assert excluded(["/foo/bar", "baz/"], "foo/bar", "foo/bar/x", "baz", "baz/y") == [True, True, True, True]
    assert excluded(["."], ".", "a") == [False, False]                  # "for historical reasons"
    assert excluded(["*"], ".", "") == [False, False]                   # the context itself never


# --- reading the file (ignorefile.ReadAll) -----------------------------------------------------

def test_reading_lines():
    lines = ["\ufefffirst", "test1", "/test2", "/a/file/here", "", "  ", "lastfile", "# comment",
             "  # not a comment", "! /inverted/abs/path", "  spaced  ", "dir//sub/../x/", "\r", "crlf\r"]
    assert read_patterns(lines) == ["first", "test1", "test2", "a/file/here", "lastfile", "# not a comment",
                                    "!inverted/abs/path", "spaced", "dir/x", "crlf"]


def test_bad_patterns_are_refused():
    for bad in (["!"], ["[", "x"], ["a["], ["a\\"], ["[]a]"], ["[-x]"], ["[a-b-c]"]):
        with pytest.raises(ValueError):
            Matcher(bad)


def test_go_clean():
    assert [go_clean(p) for p in ["", ".", "a/", "a//b", "./a/./b/", "a/../..", "/..", "/a/../../b", "//x"]] == \
        [".", ".", "a", "a/b", "a/b", "..", "/", "/b", "/x"]


# --- patternmatcher's semantics ---------------------------------------------------------------

@pytest.mark.parametrize("pattern, path, expected", [
    ("**", "file", True), ("**", "dir/file", True), ("**/", "file", True), ("**/**", "dir/file", True),
    ("dir/**", "dir/file", True), ("dir/**", "dir/dir2/file", True), ("dir/**", "dir", False),
    ("**/dir", "dir", True), ("**/dir", "dir/file", True), ("**/dir", "a/b/dir/c", True),
    ("**/dir2/*", "dir/dir2/file", True), ("**/dir2/**", "dir/dir2/dir3/file", True),
    ("**file", "file", True), ("**file", "dir/file", True), ("**file", "dir/myfile", True),
    ("**/file*", "dir/dir/file.txt", True), ("**/**/*.txt", "file.txt", True), ("**/**/*.txt2", "d/file.txt", False),
    ("a**/*.txt", "a/file.txt", True), ("a**/*.txt", "abc/d/file.txt", True),
    ("a/*.txt", "a/dir/file.txt", False), ("a/*.txt", "a/file.txt", True), ("a/*.txt**", "a/file.txt", True),
    ("a[b-d]e", "ace", True), ("a[b-d]e", "aae", False), ("a[^b-d]e", "aze", True),
    (".*", ".foo", True), (".*", "foo", False), ("abc.def", "abcZdef", False), ("abc?def", "abcZdef", True),
    ("a\\*b", "a*b", True), ("a\\*b", "axb", False), ("a(b)c/def", "a(b)c/def", True),
    ("a.|)$(}+{bc", "a.|)$(}+{bc", True), ("dist/*.whl", "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3.whl", True),
    ("a*", "ab/c", True),                   # through the parent "ab"
    ("a?b", "a/b", False), ("a*b", "a/b", False),
])
def test_patternmatcher_rules(pattern, path, expected):
    assert Matcher([pattern]).excluded(path) is expected


def test_exceptions_with_parent_directories():
    assert excluded(["docs", "!docs/README.md"], "docs/a.md", "docs/README.md") == [True, False]
    assert excluded(["docs/", "!docs/README.md"], "docs/README.md") == [False]
    assert excluded(["docs/*", "!docs/README.md"], "docs/README.md", "docs/x/README.md") == [False, True]
    assert excluded(["**", "!util/docker/web"], "util/docker/web/foo", "util/docker/other") == [False, True]
    assert excluded(["**", "!util/docker/web", "util/docker/web/foo"], "util/docker/web/foo",
                    "util/docker/web/bar") == [True, False]
    assert excluded(["!keep", "*"], "keep") == [True]                  # an exception only undoes what came before


def test_may_include_below_is_the_docker_clis_prefix_test():
    m = Matcher(["docs", "!docs/keep/me.txt", "*.log"])
    assert m.may_include_below("docs") and m.may_include_below("docs/keep")
    assert not m.may_include_below("other")
    assert not Matcher(["docs"]).may_include_below("docs")
    # a wildcard exception does not make the CLI walk into an excluded directory (Docker's quirk)
    assert not Matcher(["*", "!**/keep.txt"]).may_include_below("sub")


def walk(root: str, matcher: Matcher, dockerfile: str = "Dockerfile") -> list[str]:
    """The files the docker CLI sends (archive.TarWithOptions over the patterns that
    keep_build_files gives), as the orlop CLI walks them."""
    sent = []
    for directory, dirs, files in os.walk(root):
        rel_dir = os.path.relpath(directory, root)
        for name in sorted(dirs):
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            if matcher.excluded(rel) and not matcher.may_include_below(rel):
                dirs.remove(name)
        for name in files:
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            if not matcher.excluded(rel):
                sent.append(rel)
    return sorted(sent)


def test_the_context_the_cli_sends(tmp_path):
    for rel in ["Dockerfile", ".dockerignore", "a.txt", "debug.log", "keep.log", "secret/key", "secret/sub/k2",
                "docs/x/z.md", "docs/x/y/z.tmp", "node_modules/m/index.js", "node_modules/keep/me.js",
                "build/out/app", "build/out/app.map"]:
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rel)
    lines = ["# comment", "*.log", "/secret/", "!keep.log", "docs/**/*.tmp", "node_modules",
             "!node_modules/keep", "build/**/*.map", "Dockerfile", ".dockerignore"]
    matcher = Matcher(keep_build_files(lines, "Dockerfile"))
    assert walk(str(tmp_path), matcher) == [".dockerignore", "Dockerfile", "a.txt", "build/out/app", "docs/x/z.md",
                                            "keep.log", "node_modules/keep/me.js"]


def test_keep_build_files():
    assert keep_build_files(["*.md"], "Dockerfile") == ["*.md"]
    assert keep_build_files(["*", "!src"], "build/Dockerfile.prod") == [
        "*", "!src", "!.dockerignore", "!build/Dockerfile.prod"]


# --- Go's filepath.Match ------------------------------------------------------------------------

@pytest.mark.parametrize("pattern, name, expected", [
    ("abc", "abc", True), ("*", "abc", True), ("*c", "abc", True), ("a*", "a", True), ("a*", "ab/c", False),
    ("a*/b", "abc/b", True), ("a*/b", "a/c/b", False), ("a*b*c*d*e*/f", "axbxcxdxexxx/f", True),
    ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", False), ("a*b?c*x", "abxbbxdbxebxczzx", True),
    ("a*b?c*x", "abxbbxdbxebxczzy", False), ("ab[c]", "abc", True), ("ab[b-d]", "abc", True),
    ("ab[e-g]", "abc", False), ("ab[^c]", "abc", False), ("ab[^e-g]", "abc", True), ("a\\*b", "a*b", True),
    ("a\\*b", "ab", False), ("a?b", "a☺b", True), ("a[^a]b", "a☺b", True), ("a???b", "a☺b", False),
    ("[a-ζ]*", "α", True), ("*[a-ζ]", "A", False), ("a?b", "a/b", False), ("a*b", "a/b", False),
    ("[\\]a]", "]", True), ("[\\-]", "-", True), ("[x\\-]", "x", True), ("[x\\-]", "z", False),
    ("*x", "xxx", True), ("*.txt", ".hidden.txt", True),
])
def test_go_match(pattern, name, expected):
    assert go_match(pattern, name) is expected


@pytest.mark.parametrize("pattern", ["[]a]", "[-]", "[x-]", "[-x]", "\\", "[a-b-c]", "[", "[^", "[^bc", "a[",
                                     "*[", "x*\\"])
def test_go_match_bad_patterns_even_without_a_match(pattern):
    with pytest.raises(ValueError, match="syntax error in pattern"):
        go_match(pattern, "zzz")


# --- load ------------------------------------------------------------------------------------------

def test_load(tmp_path):
    assert not load(str(tmp_path))                                     # no .dockerignore: nothing excluded
    (tmp_path / ".dockerignore").write_bytes(b"\xef\xbb\xbf*.log\r\n!keep.log\r\n")
    m = load(str(tmp_path))
    assert m.excluded("x.log") and not m.excluded("keep.log")


def test_load_never_reads_outside_the_context(tmp_path):
    outside = tmp_path / "outside"
    outside.write_text("*\n")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "etc").mkdir()
    (ctx / "etc" / "ignore").write_text("*.tmp\n")
    (ctx / ".dockerignore").symlink_to(str(outside))                   # resolved as if ctx were /
    assert not load(str(ctx))
    (ctx / ".dockerignore").unlink()
    (ctx / ".dockerignore").symlink_to("/etc/ignore")
    m = load(str(ctx))
    assert m.excluded("a.tmp") and not m.excluded("a")
