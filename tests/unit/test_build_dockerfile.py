"""Dockerfile parsing and variable substitution as Docker does them (orlop.build.dockerfile):
every syntax form, the errors Docker gives (with their line), and the examples of Docker's
Dockerfile reference."""

from __future__ import annotations

import io

import pytest

from orlop.build.dockerfile import (
    EXPANDED,
    DockerfileError,
    expand,
    flag,
    healthcheck,
    heredoc_content,
    key_values,
    parse,
    parse_duration,
    shell_command,
    sources_and_dest,
    words,
)


def one(text: str):
    """The single instruction after `FROM scratch`."""
    _, stages = parse("FROM scratch\n" + text)
    (inst,) = stages[0].instructions
    return inst


def error(text: str) -> DockerfileError:
    with pytest.raises(DockerfileError) as info:
        parse(text)
    return info.value


# --- stages, meta ARGs ----------------------------------------------------------------------

def test_stages_meta_args_and_from_forms():
    meta, stages = parse("ARG BASE=busybox\nARG TAG\n"
                         "FROM --platform=linux/arm64 ${BASE}:${TAG:-latest} AS Builder\nRUN make\n"
                         "from scratch as final\ncopy --from=builder /out /out\n"
                         "FROM builder\n")
    assert [i.keyword for i in meta] == ["ARG", "ARG"]
    assert [(s.index, s.name, s.base, s.platform) for s in stages] == [
        (0, "builder", "${BASE}:${TAG:-latest}", "linux/arm64"), (1, "final", "scratch", None), (2, None, "builder", None)]
    assert stages[0].from_line.original == "FROM --platform=linux/arm64 ${BASE}:${TAG:-latest} AS Builder"
    assert stages[0].from_line.line == 3
    assert [i.keyword for i in stages[1].instructions] == ["COPY"]   # keywords are case-insensitive
    assert stages[1].instructions[0].flags == {"from": "builder"}
    assert stages[2].instructions == []
    assert words(stages[0].from_line, {"BASE": "alpine", "TAG": ""}) == ["alpine:latest", "AS", "Builder"]


@pytest.mark.parametrize("text, line, message", [
    ("RUN true\n", 1, "no build stage in current context"),
    ("ARG A\nENV B=1\nFROM x\n", 2, "before FROM"),
    ("ARG A\n", None, "no stages to build"),
    ("", None, "file with no instructions"),
    ("# only\n\n   # comments\n", None, "file with no instructions"),
    ("FROM\n", 1, "FROM requires either one or three arguments"),
    ("FROM a b\n", 1, "FROM requires either one or three arguments"),
    ("FROM a AS b c\n", 1, "FROM requires either one or three arguments"),
    ("FROM a AS 1st\n", 1, 'invalid name for build stage: "1st"'),
    ("FROM a AS my/stage\n", 1, "invalid name for build stage"),
    ("FROM a\nFROBNICATE x\n", 2, "unknown instruction: FROBNICATE"),
    ("FROM a\n\n\nfoo bar\n", 4, "unknown instruction: foo"),
    ("FROM a\nCOPY onlyone\n", 2, "COPY requires at least two arguments, but only one was provided"),
    ("FROM a\nADD [\"x\"]\n", 2, "ADD requires at least two arguments"),
    ("FROM a\nCOPY x <<EOF\nhi\nEOF\n", 2, "COPY cannot accept a heredoc as a destination"),
    ("FROM a\nWORKDIR\n", 2, "WORKDIR requires exactly one argument"),
    ("FROM a\nUSER\n", 2, "USER requires exactly one argument"),
    ("FROM a\nSTOPSIGNAL\n", 2, "STOPSIGNAL requires exactly one argument"),
    ("FROM a\nMAINTAINER\n", 2, "MAINTAINER requires exactly one argument"),
    ("FROM a\nEXPOSE\n", 2, "EXPOSE requires at least one argument"),
    ("FROM a\nVOLUME\n", 2, "VOLUME requires at least one argument"),
    ('FROM a\nVOLUME ["/a", " "]\n', 2, "VOLUME specified can not be an empty string"),
    ("FROM a\nONBUILD\n", 2, "ONBUILD requires at least one argument"),
    ("FROM a\nENV\n", 2, "ENV requires at least one argument"),
    ("FROM a\nENV LONELY\n", 2, "ENV must have two arguments"),
    ("FROM a\nLABEL x\n", 2, "LABEL must have two arguments"),
    ("FROM a\nENV a=1 b\n", 2, """Syntax error - can't find = in "b". Must be of the form: name=value"""),
    ("FROM a\nLABEL =x\n", 2, "LABEL names can not be blank"),
    ("FROM a\nARG\n", 2, "ARG requires at least one argument"),
    ("FROM a\nARG =x\n", 2, "ARG names can not be blank"),
    ("FROM a\nSHELL /bin/bash -c\n", 2, "SHELL requires the arguments to be in JSON form"),
    ("FROM a\nSHELL []\n", 2, "SHELL requires at least one argument"),
    ('FROM a\nRUN ["echo", 1]\n', 2, "arrays must be comprised of strings only"),
    ('FROM a\nCMD [["nested"]]\n', 2, "arrays must be comprised of strings only"),
    ("FROM a\nONBUILD ONBUILD RUN x\n", 2, "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
    ("FROM a\nONBUILD FROM x\n", 2, "FROM isn't allowed as an ONBUILD trigger"),
    ("FROM a\nONBUILD maintainer me\n", 2, "MAINTAINER isn't allowed as an ONBUILD trigger"),
    ("FROM a\nRUN <<EOF\nnever ends\n", 2, "unterminated heredoc"),
])
def test_errors_are_dockers_and_name_the_line(text, line, message):
    err = error(text)
    assert message in str(err)
    assert err.line == line
    if line:
        assert str(err).startswith(f"Dockerfile parse error line {line}: ")


def test_an_error_on_a_continued_instruction_names_its_first_line():
    err = error("FROM a\nRUN ok\nCOPY \\\n  \\\n   onlyone\n")
    assert err.line == 3


# --- lines: continuations, comments, blank lines ------------------------------------------------

def test_continuations_join_as_docker_joins_them():
    _, stages = parse("FROM a\n"
                      "RUN apt-get update && \\\n"
                      "    apt-get install -y vim \\   \n"       # blanks after the backslash
                      "# a comment inside is dropped\n"
                      "    # an indented one too\n"
                      "    && rm -rf /var/lib/apt\n"
                      "  RUN   indented  \n"
                      "RUN last \\\n")                             # continues into the end of the file
    run, indented, last = stages[0].instructions
    assert run.args == "apt-get update &&     apt-get install -y vim     && rm -rf /var/lib/apt"
    assert run.original == "RUN " + run.args
    assert (run.line, run.end_line) == (2, 6)
    assert run.warnings == []
    assert (indented.args, indented.original, indented.line) == ("indented", "RUN   indented", 7)
    assert (last.args, last.line) == ("last", 8)


def test_blank_lines_inside_a_continuation_are_skipped_with_a_warning():
    inst = one("RUN foo \\\n\nbar \\\n  \nbaz\n")
    assert inst.args == "foo bar baz"
    assert inst.end_line == 6
    assert "Empty continuation line" in inst.warnings[0]


def test_an_escaped_escape_at_the_end_does_not_continue():
    _, stages = parse("FROM a\nRUN echo a\\\\\nRUN echo b\n")
    assert [i.args for i in stages[0].instructions] == ["echo a\\\\", "echo b"]


def test_a_comment_is_only_a_whole_line():
    inst = one("RUN echo 'not # a comment' # nor this\n")
    assert inst.args == "echo 'not # a comment' # nor this"


def test_crlf_and_a_byte_order_mark():
    meta, stages = parse("\ufeffARG A=1\r\nFROM a\r\nRUN x \\\r\n  y\r\n")
    assert meta[0].args == "A=1"
    assert stages[0].instructions[0].args == "x   y"


def test_same_instructions_as_dockerfile_parse_on_ordinary_dockerfiles():
    """dockerfile_parse (a well-kept parser) agrees on what it gets right."""
    from dockerfile_parse import DockerfileParser

    text = ("# syntax=docker/dockerfile:1\nFROM python:3.12 AS build\n# comment\nWORKDIR /src\n"
            "COPY requirements.txt .\nRUN pip install \\\n    -r requirements.txt \\\n    && rm -rf /root/.cache\n"
            "ENV A=1 \\\n    B=2\nCMD [\"python\", \"-m\", \"app\"]\n")
    ours = [(i.line, i.keyword, " ".join(i.args.split())) for s in parse(text)[1]
            for i in [s.from_line, *s.instructions]]
    theirs = [(item["startline"] + 1, item["instruction"], " ".join(item["value"].split()))
              for item in DockerfileParser(fileobj=io.BytesIO(text.encode())).structure
              if item["instruction"] != "COMMENT"]
    assert [(line, kw) for line, kw, _ in ours] == [(line, kw) for line, kw, _ in theirs]
    assert [v for _, kw, v in ours if kw != "FROM"] == [v for _, kw, v in theirs if kw != "FROM"]


def test_where_dockerfile_parse_is_not_docker():
    """A blank line inside a continuation: Docker skips it; dockerfile_parse ends the
    instruction there (and would read `bar` as an instruction)."""
    from dockerfile_parse import DockerfileParser

    text = "FROM a\nRUN foo \\\n\nbar\n"
    assert one("RUN foo \\\n\nbar\n").args == "foo bar"
    theirs = [i["instruction"] for i in DockerfileParser(fileobj=io.BytesIO(text.encode())).structure]
    assert theirs == ["FROM", "RUN", "BAR"]


# --- parser directives and the escape character ---------------------------------------------------

def test_escape_directive_backtick():
    _, stages = parse("# escape=`\n\nFROM mcr.microsoft.com/windows/servercore\n"
                      "COPY testfile.txt c:\\\n"
                      "RUN dir c:\\ `\n    && echo done\n"
                      "ENV DIR=C:\\Program` Files\\App\n")
    copy, run, env = stages[0].instructions
    assert copy.args == "testfile.txt c:\\" and copy.escape == "`"
    assert run.args == "dir c:\\     && echo done"
    assert words(copy, {}) == ["testfile.txt", "c:\\"]
    assert key_values(env, {}) == [("DIR", "C:\\Program Files\\App")]


def test_escape_directive_forms_and_placement():
    assert one_escape("#escape=`\nFROM a\nRUN a `\nb\n") == "a b"
    assert one_escape("# ESCAPE = `  \nFROM a\nRUN a `\nb\n") == "a b"            # case, blanks
    assert one_escape("# syntax=docker/dockerfile:1\n# escape=`\nFROM a\nRUN a `\nb\n") == "a b"
    # not a directive once a comment, a blank line or an instruction came: a plain comment
    assert one_escape("# hello\n# escape=`\nFROM a\nRUN a `\nRUN b\n") == "a `"
    assert one_escape("\n# escape=`\nFROM a\nRUN a `\nRUN b\n") == "a `"
    assert one_escape("# unknowndirective=value\n# escape=`\nFROM a\nRUN a `\nRUN b\n") == "a `"


def one_escape(text: str) -> str:
    return parse(text)[1][0].instructions[0].args


def test_bad_escape_directives():
    err = error("# escape=x\nFROM a\n")
    assert "invalid escape token 'x' does not match ` or \\" in str(err) and err.line == 1
    assert "only one escape parser directive can be used" in str(error("# escape=`\n# escape=\\\nFROM a\n"))


# --- exec (JSON) and shell forms ----------------------------------------------------------------

@pytest.mark.parametrize("text, exec_form, args", [
    ('RUN ["echo", "hello world"]', ["echo", "hello world"], '["echo", "hello world"]'),
    ('CMD   [ "a" ,"b"]  ', ["a", "b"], '[ "a" ,"b"]'),
    ("CMD []", [], "[]"),
    ('ENTRYPOINT ["/bin/sh", "-c", "echo \\"q\\""]', ["/bin/sh", "-c", 'echo "q"'], None),
    ('SHELL ["powershell", "-command"]', ["powershell", "-command"], None),
    ('VOLUME ["/data", "/logs"]', ["/data", "/logs"], None),
    ('COPY ["a file", "/dest dir/"]', ["a file", "/dest dir/"], None),
    ("RUN echo hello", None, "echo hello"),
    ("CMD echo [not json]", None, "echo [not json]"),
])
def test_exec_and_shell_forms(text, exec_form, args):
    inst = one(text + "\n")
    assert inst.json == exec_form
    if args is not None:
        assert inst.args == args
    assert inst.warnings == []


@pytest.mark.parametrize("text", ["CMD ['single', 'quotes']", 'RUN ["unterminated"', 'CMD ["a", "b",]',
                                  "ENTRYPOINT [NaN]", 'RUN ["a"] trailing'])
def test_malformed_json_is_shell_form_with_a_warning(text):
    inst = one(text + "\n")
    assert inst.json is None
    assert inst.args == text.split(None, 1)[1]
    assert "look like JSON" in inst.warnings[0]


def test_json_is_not_a_form_of_every_instruction():
    assert one('EXPOSE ["80"]\n').json is None
    assert one('WORKDIR ["/x"]\n').json is None
    assert one('USER ["me"]\n').args == '["me"]'


def test_shell_form_commands_are_not_expanded():
    assert words(one("RUN echo $HOME ${X:-y}\n"), {"HOME": "/h"}) == ["echo $HOME ${X:-y}"]
    assert words(one('CMD ["echo", "$HOME"]\n'), {"HOME": "/h"}) == ["echo", "$HOME"]
    assert words(one("ENTRYPOINT exec $0\n"), {}) == ["exec $0"]
    assert "RUN" not in EXPANDED and "CMD" not in EXPANDED and "ENTRYPOINT" not in EXPANDED
    assert EXPANDED >= {"ADD", "COPY", "ENV", "EXPOSE", "FROM", "LABEL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR"}


# --- options ------------------------------------------------------------------------------------

def test_copy_and_add_options():
    inst = one('COPY --from=build --chown="app:app" --chmod=0640 --link a b /d/\n')
    assert inst.flags == {"from": "build", "chown": "app:app", "chmod": "0640", "link": "true"}
    assert inst.args == "a b /d/"
    assert any("--link is ignored" in w for w in inst.warnings)
    assert one("COPY --link=false a /b\n").flags == {"link": "false"}
    assert one("ADD --checksum=sha256:abc --keep-git-dir=true x /y\n").flags == {
        "checksum": "sha256:abc", "keep-git-dir": "true"}
    many = one("COPY --exclude=*.tmp --exclude=*.log . /app\n")
    assert many.flag_values["exclude"] == ["*.tmp", "*.log"] and many.flags["exclude"] == "*.log"


def test_flags_end_at_the_first_word_that_is_not_one():
    assert one("COPY -- --not-a-flag /d\n").args == "--not-a-flag /d"
    assert one("COPY --chown=1 -- foo /tmp/\n").flags == {"chown": "1"}
    assert one("RUN echo --this --is --no --flag\n").flags == {}


def test_expanded_option_values():
    inst = one("COPY --chown=$U:${G:-staff} --from=$STAGE a /b\n")
    assert flag(inst, "chown", {"U": "me"}) == "me:staff"
    assert flag(inst, "from", {"STAGE": "x"}) == "$STAGE"          # Docker does not expand --from
    assert flag(inst, "chmod", {}) is None


@pytest.mark.parametrize("text, message", [
    ("COPY --frm=x a b", "unknown flag: --frm (did you mean --from?)"),
    ("ADD --from=x a b", "unknown flag: --from"),
    ("ENV --x=1 A=1", "unknown flag: --x"),
    ("CMD --help", "unknown flag: --help"),
    ("COPY --from a b", "missing a value on flag: --from"),
    ("COPY --link= a b", "missing a value on flag: --link"),
    ("COPY --link=maybe a b", "expecting boolean value for flag --link, not: maybe"),
    ("COPY --from=a --from=b x y", "duplicate flag specified: --from"),
    ("HEALTHCHECK --interval CMD true", "missing a value on flag: --interval"),
])
def test_bad_options(text, message):
    err = error("FROM a\n" + text + "\n")
    assert message in str(err) and err.line == 2


def test_run_options_are_parsed_and_flagged_as_buildkit_only():
    inst = one("RUN --mount=type=cache,target=/root/.cache --network=none pip install x\n")
    assert inst.flags == {"mount": "type=cache,target=/root/.cache", "network": "none"}
    assert inst.args == "pip install x"
    assert any("BuildKit" in w for w in inst.warnings)


# --- HEALTHCHECK ----------------------------------------------------------------------------------

def test_healthcheck():
    inst = one("HEALTHCHECK --interval=5m --timeout=3s --start-period=1m30s --retries=3 \\\n"
               "  CMD curl -f http://localhost/ || exit 1\n")
    assert healthcheck(inst) == {"Test": ["CMD-SHELL", "curl -f http://localhost/ || exit 1"],
                                 "Interval": 300_000_000_000, "Timeout": 3_000_000_000,
                                 "StartPeriod": 90_000_000_000, "Retries": 3}
    assert healthcheck(one('HEALTHCHECK cmd ["/check", "--fast"]\n')) == {"Test": ["CMD", "/check", "--fast"]}
    assert healthcheck(one("HEALTHCHECK NONE\n")) == {"Test": ["NONE"]}
    assert healthcheck(one("HEALTHCHECK --interval=0s CMD true\n")) == {"Test": ["CMD-SHELL", "true"]}


@pytest.mark.parametrize("text, message", [
    ("HEALTHCHECK", "HEALTHCHECK requires at least one argument"),
    ("HEALTHCHECK NONE x", "HEALTHCHECK NONE takes no arguments"),
    ("HEALTHCHECK PING x", 'Unknown type "PING" in HEALTHCHECK (try CMD)'),
    ("HEALTHCHECK CMD", "Missing command after HEALTHCHECK CMD"),
    ("HEALTHCHECK CMD []", "Missing command after HEALTHCHECK CMD"),
    ("HEALTHCHECK --interval=5 CMD true", 'time: missing unit in duration "5"'),
    ("HEALTHCHECK --timeout=fast CMD true", 'time: invalid duration "fast"'),
    ("HEALTHCHECK --timeout=3y CMD true", 'unknown unit "y"'),
    ("HEALTHCHECK --interval=10us CMD true", 'Interval "interval" cannot be less than 1ms'),
    ("HEALTHCHECK --retries=-1 CMD true", "--retries cannot be negative (-1)"),
    ("HEALTHCHECK --retries=x CMD true", 'parsing "x": invalid syntax'),
    ("HEALTHCHECK --retry=1 CMD true", "unknown flag: --retry"),
])
def test_bad_healthchecks(text, message):
    assert message in str(error("FROM a\n" + text + "\n"))


def test_healthcheck_none_ignores_options_as_docker_does():
    assert healthcheck(one("HEALTHCHECK --whatever=1 NONE\n")) == {"Test": ["NONE"]}


@pytest.mark.parametrize("text, ns", [("0", 0), ("1s", 10**9), ("1.5h", 5400 * 10**9), ("1m30s", 90 * 10**9),
                                      ("300ms", 300 * 10**6), ("2us", 2000), ("2µs", 2000), (".5s", 5 * 10**8),
                                      ("1h2m3s4ms5us6ns", 3723004005006), ("-1s", -(10**9))])
def test_go_durations(text, ns):
    assert parse_duration(text) == ns


# --- ONBUILD --------------------------------------------------------------------------------------

def test_onbuild_keeps_the_trigger_as_written():
    inst = one("ONBUILD   COPY --chown=app . /src\n")
    assert inst.args == "COPY --chown=app . /src" and inst.warnings == []
    (trigger,) = parse("FROM scratch\n" + inst.args + "\n")[1][0].instructions
    assert (trigger.keyword, trigger.flags, trigger.args) == ("COPY", {"chown": "app"}, ". /src")


def test_onbuild_with_an_unknown_trigger_is_accepted_with_a_warning_as_docker():
    inst = one("ONBUILD FROBNICATE x\n")
    assert "will fail in builds FROM this image" in inst.warnings[0]


def test_onbuild_heredoc_round_trips():
    inst = one("ONBUILD RUN <<EOF\necho built\nEOF\n")
    assert inst.args == "RUN <<EOF\necho built\nEOF"
    (trigger,) = parse("FROM scratch\n" + inst.args + "\n")[1][0].instructions
    assert trigger.heredocs == [("EOF", "echo built\n")]


# --- heredocs ------------------------------------------------------------------------------------

def test_run_heredoc():
    _, stages = parse("FROM a\nRUN <<EOF\napt-get update\napt-get install -y curl\nEOF\nRUN after\n")
    run, after = stages[0].instructions
    assert run.args == "<<EOF" and run.heredocs == [("EOF", "apt-get update\napt-get install -y curl\n")]
    assert (run.line, run.end_line, after.line) == (2, 5, 6)
    assert shell_command(run) == "apt-get update\napt-get install -y curl\n"
    assert shell_command(after) == "after"


def test_heredocs_given_to_a_command():
    inst = one("RUN python3 <<'PY' > /out && cat <<-END >> /out\nprint(1)\nPY\n\tindented\n\tEND\n")
    assert inst.heredocs == [("PY", "print(1)\n"), ("END", "indented\n")]
    assert inst.heredoc_expand == {"PY": False, "END": True}
    assert shell_command(inst) == inst.args + "\nprint(1)\nPY\nindented\nEND"


def test_copy_heredoc_with_and_without_expansion():
    inst = one('COPY <<EOF <<"RAW" src.txt /etc/\nhome=$HOME \\$literal\nEOF\nhome=$HOME\nRAW\n')
    sources, inline, dest = sources_and_dest(inst, {"HOME": "/root"})
    assert (sources, dest) == (["src.txt"], "/etc/")
    assert inline == [("EOF", "home=/root $literal\n"), ("RAW", "home=$HOME\n")]
    assert words(inst, {"HOME": "/root"}) == ["<<EOF", '<<"RAW"', "src.txt", "/etc/"]
    assert heredoc_content(inst, "RAW", {}) == "home=$HOME\n"


def test_chomped_heredoc_drops_leading_tabs_only():
    inst = one("COPY <<-EOF /f\n\tone\n\t\ttwo\n    spaces\n\tEOF\n")
    assert inst.heredocs == [("EOF", "one\ntwo\n    spaces\n")]


@pytest.mark.parametrize("text", ['RUN ["cat", "<<EOF"]\n', 'RUN echo "<<EOF"\n', "RUN echo a<<EOF\n",
                                  "CMD cat <<EOF\n", "RUN cat << \n"])
def test_not_heredocs(text):
    inst = one(text)
    assert inst.heredocs == []


def test_heredoc_marker_may_be_spaced_and_numbered():
    inst = one("RUN cat << EOF 3<<X\na\nEOF\nb\nX\n")
    assert inst.heredocs == [("EOF", "a\n"), ("X", "b\n")]


# --- variable substitution -------------------------------------------------------------------------

@pytest.mark.parametrize("word, expected", [
    ("$A", "alpha"), ("${A}", "alpha"), ("pre${A}post", "prealphapost"), ("$A.x", "alpha.x"), ("$A_x", ""),
    ("$UNSET", ""), ("${UNSET}x", "x"),
    ("${UNSET:-default}", "default"), ("${EMPTY:-default}", "default"), ("${A:-default}", "alpha"),
    ("${UNSET-default}", "default"), ("${EMPTY-default}", ""), ("${A-default}", "alpha"),
    ("${UNSET:+alt}", ""), ("${EMPTY:+alt}", ""), ("${A:+alt}", "alt"),
    ("${UNSET+alt}", ""), ("${EMPTY+alt}", "alt"), ("${A+alt}", "alt"),
    ("${UNSET:-${A:-x}}", "alpha"), ("${UNSET:-$A-b}", "alpha-b"), ("${UNSET:-a b}", "a b"),
    ("${A?}", "alpha"), ("${EMPTY?}", ""), ("${A:?}", "alpha"),
    ("\\$A", "$A"), ("\\${A}", "${A}"), ("a\\\\$A", "a\\alpha"), ("\\\\", "\\"), ("x\\", "x"),
    ("'$A'", "$A"), ('"$A"', "alpha"), ('"a  b"', "a  b"), ("'a'\"b\"c", "abc"), ('"\\$A"', "$A"),
    ('"a\\b"', "a\\b"), ("a\\b", "ab"), ("\"it's\"", "it's"),
    ("$1", ""), ("$$", ""), ("$@x", "x"), ("$", "$"), ("$.", "$."), ("${1:-one}", "one"),
    ("${STR#f*b}", "arbaz"), ("${STR##f*b}", "az"), ("${STR%b*}", "foobar"), ("${STR%%b*}", "foo"),
    ("${ABC/a/b}", "bbcabc"), ("${ABC//a/b}", "bbcbbc"), ("${PATHS//\\//:}", ":usr:bin"),
    ("${STR#}", "foobarbaz"), ("${STR#\\*}", "foobarbaz"),
])
def test_substitution(word, expected):
    env = {"A": "alpha", "EMPTY": "", "STR": "foobarbaz", "ABC": "abcabc", "PATHS": "/usr/bin"}
    assert expand(word, env) == expected


@pytest.mark.parametrize("word, message", [
    ("${}", "bad substitution"), ("${:-x}", "bad substitution"), ("${A", "missing '}'"),
    ("${A:-x", "missing '}'"), ("${A:=x}", "unsupported modifier (:=)"), ("${A:#x}", "unsupported modifier"),
    ("${UNSET?must be set}", "UNSET: must be set"), ("${UNSET:?}", "UNSET: is not allowed to be unset"),
    ("${EMPTY:?}", "EMPTY: is not allowed to be empty"), ("'open", "matching single-quote"),
    ('"open', "matching double-quote"), ("${A/x}", "missing '/' in ${}"),
])
def test_substitution_errors(word, message):
    with pytest.raises(DockerfileError, match="failed to process") as info:
        expand(word, {"A": "a", "EMPTY": ""}, line=7)
    assert message in str(info.value) and info.value.line == 7


def test_backtick_escape_in_substitution():
    assert expand("`$A C:\\dir", {"A": "x"}, escape="`") == "$A C:\\dir"


def test_docker_reference_example_for_environment_replacement():
    """FROM busybox / ENV FOO=/bar / WORKDIR ${FOO} / ADD . $FOO / COPY \\$FOO /quux"""
    _, stages = parse("FROM busybox\nENV FOO=/bar\nWORKDIR ${FOO}   \nADD . $FOO\nCOPY \\$FOO /quux\n")
    env_, workdir, add, copy = stages[0].instructions
    env = dict(key_values(env_, {}))
    assert env == {"FOO": "/bar"}
    assert expand(workdir.args, env) == "/bar"
    assert words(add, env) == [".", "/bar"]
    assert words(copy, env) == ["$FOO", "/quux"]


def test_one_value_per_variable_throughout_an_instruction():
    """ENV abc=hello / ENV abc=bye def=$abc / ENV ghi=$abc: def is hello, ghi is bye."""
    _, stages = parse("FROM a\nENV abc=hello\nENV abc=bye def=$abc\nENV ghi=$abc\n")
    env: dict[str, str] = {}
    for inst in stages[0].instructions:
        env.update(key_values(inst, env))
    assert env == {"abc": "bye", "def": "hello", "ghi": "bye"}


# --- ENV, LABEL, ARG ------------------------------------------------------------------------------

def test_env_forms_from_the_reference():
    _, stages = parse('FROM a\nENV MY_NAME="John Doe"\nENV MY_DOG=Rex\\ The\\ Dog\nENV MY_CAT=fluffy\n'
                      'ENV MY_NAME="John Doe" MY_DOG=Rex\\ The\\ Dog \\\n    MY_CAT=fluffy\n'
                      "ENV MY_VAR my-value with  spaces\n"
                      "ENV ONE  \"quoted legacy\"\n"
                      "ENV X=$HOME Y='$HOME' Z=\"$HOME\"\n")
    found = [key_values(i, {"HOME": "/root"}) for i in stages[0].instructions]
    assert found == [[("MY_NAME", "John Doe")], [("MY_DOG", "Rex The Dog")], [("MY_CAT", "fluffy")],
                     [("MY_NAME", "John Doe"), ("MY_DOG", "Rex The Dog"), ("MY_CAT", "fluffy")],
                     [("MY_VAR", "my-value with  spaces")], [("ONE", "quoted legacy")],
                     [("X", "/root"), ("Y", "$HOME"), ("Z", "/root")]]


def test_label_forms_from_the_reference():
    _, stages = parse('FROM a\nLABEL "com.example.vendor"="ACME Incorporated"\n'
                      'LABEL com.example.label-with-value="foo"\nLABEL version="1.0"\n'
                      'LABEL description="This text illustrates \\\nthat label-values can span multiple lines."\n'
                      'LABEL multi.label1="value1" multi.label2="value2" other="value3"\n'
                      "LABEL key=$V empty=\n")
    found = [key_values(i, {"V": "v1"}) for i in stages[0].instructions]
    assert found == [[("com.example.vendor", "ACME Incorporated")], [("com.example.label-with-value", "foo")],
                     [("version", "1.0")],
                     [("description", "This text illustrates that label-values can span multiple lines.")],
                     [("multi.label1", "value1"), ("multi.label2", "value2"), ("other", "value3")],
                     [("key", "v1"), ("empty", "")]]


def test_arg_forms():
    _, stages = parse('FROM a\nARG user1=someuser\nARG buildno\nARG A="x y" B=$A C\nARG EMPTY=\n')
    found = [key_values(i, {"A": "prev"}) for i in stages[0].instructions]
    assert found == [[("user1", "someuser")], [("buildno", None)], [("A", "x y"), ("B", "prev"), ("C", None)],
                     [("EMPTY", "")]]


def test_key_values_refuses_other_instructions_and_words_refuses_these():
    with pytest.raises(ValueError):
        key_values(one("RUN x\n"), {})
    with pytest.raises(ValueError):
        words(one("ENV A=1\n"), {})


def test_expansion_errors_carry_the_instruction_line():
    _, stages = parse("FROM a\n\nENV A=\"${B:?B is required}\"\n")  # unquoted, the blanks split it
    with pytest.raises(DockerfileError) as info:
        key_values(stages[0].instructions[0], {})
    assert info.value.line == 3 and "B: B is required" in str(info.value)


# --- words of COPY/ADD/EXPOSE/VOLUME ----------------------------------------------------------------

def test_copy_words_split_on_blanks_only():
    inst = one("COPY $SRC/*.txt  ${DEST:-/opt}/\n")
    assert words(inst, {"SRC": "docs"}) == ["docs/*.txt", "/opt/"]
    with pytest.raises(DockerfileError, match="double-quote"):  # shell form: quotes do not keep blanks
        words(one('COPY "a b" /x\n'), {})
    assert words(one('COPY ["a b", "$D"]\n'), {"D": "/x y/"}) == ["a b", "/x y/"]
    assert words(one("ADD http://example.com/f.tgz /f\n"), {}) == ["http://example.com/f.tgz", "/f"]


def test_expose_may_expand_to_several_ports():
    assert words(one("EXPOSE 80/tcp $PORTS ${UDP}/udp\n"), {"PORTS": "443  8443", "UDP": "53"}) == [
        "80/tcp", "443", "8443", "53/udp"]


def test_volume_words():
    assert words(one("VOLUME /data $LOGS\n"), {"LOGS": "/var/log"}) == ["/data", "/var/log"]
    assert words(one('VOLUME ["/a b", "$X"]\n'), {"X": "/x"}) == ["/a b", "/x"]


def test_single_word_instructions():
    for text, expected in [("USER ${U:-app}:$G", "app:grp"), ('WORKDIR "/my dir"', "/my dir"),
                           ("STOPSIGNAL SIG$S", "SIGTERM")]:
        inst = one(text + "\n")
        assert words(inst, {"G": "grp", "S": "TERM"}) == [expected]
        assert expand(inst.args, {"G": "grp", "S": "TERM"}) == expected
    assert words(one("MAINTAINER $ME <me@x>\n"), {"ME": "x"}) == ["$ME <me@x>"]
