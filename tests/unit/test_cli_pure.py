"""The CLI's pure parts: Go templates, docker's units and tables, option parsing, the
create body, stdcopy frames and the detach keys (no daemon needed)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from orlop.cli import containeropts, gojson, units
from orlop.cli.commands.ps import container_row, go_quote
from orlop.cli.errors import CommandError
from orlop.cli.flags import UsageError, parse
from orlop.cli.formatter import Format, tabwrite
from orlop.cli.streams import Demux
from orlop.cli.template import TemplateError, render
from orlop.cli.tty import EscapeDetector, detach_key_bytes

RECORD = {"Name": "/web", "State": {"Pid": 42, "Status": "running", "Running": True},
          "Config": {"Labels": {"b": "2", "a": "<1>"}, "Env": ["A=1", "B=2"], "Entrypoint": None,
                     "Cmd": ["sh", "-c", "a && b > c"]},
          "Names": ["x", "y"], "Ratio": 1.5, "Whole": 3.0}


@pytest.mark.parametrize("template, expected", [
    ("{{.State.Pid}}", "42"),
    ("{{.Name}}", "/web"),
    ("{{json .Config.Cmd}}", '["sh","-c","a && b > c"]'),  # docker's json: no HTML escaping
    ("{{.Config.Labels}}", "map[a:<1> b:2]"),
    ("{{.Config.Env}}", "[A=1 B=2]"),
    ("{{.Config.Entrypoint}}", "<no value>"),
    ("{{.Ratio}} {{.Whole}}", "1.5 3"),
    ("{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}", "a=<1>;b=2;"),
    ("{{range .Config.Env}}[{{.}}]{{end}}", "[A=1][B=2]"),
    ("{{range .Config.Entrypoint}}x{{else}}none{{end}}", "none"),
    ("{{join .Names \",\"}}", "x,y"),
    ("{{.Names | json}}", '["x","y"]'),
    ("{{upper .State.Status}} {{lower \"AB\"}} {{title \"a b\"}}", "RUNNING ab A B"),
    ("{{if eq .State.Status \"running\"}}up{{else}}down{{end}}", "up"),
    ("{{if .Config.Entrypoint}}e{{else if .Names}}n{{else}}-{{end}}", "n"),
    ("{{with .State}}{{.Pid}}{{end}}", "42"),
    ("{{len .Names}} {{index .Names 1}} {{index .Config.Labels \"b\"}}", "2 y 2"),
    ("{{printf \"%s:%d\" .Name .State.Pid}}", "/web:42"),
    ("a {{- \" b \" -}} c", "a b c"),
    ("{{/* a comment */}}{{$n := .Name}}{{$n}}", "/web"),
    ("{{truncate .Name 2}}|{{pad .Name 1 1}}", "/w| /web "),
])
def test_go_template(template, expected):
    assert render(template, RECORD) == expected


@pytest.mark.parametrize("template", ["{{.Nope}}", "{{.State.Pid.X}}", "{{nofunc .Name}}", "{{if .Name}}",
                                      "{{end}}", "{{.Name"])
def test_go_template_errors(template):
    with pytest.raises(TemplateError):
        render(template, RECORD)


def test_go_json_encoding():
    assert gojson.dumps({"a": "<&>", "b": [1, 2.0, None, True], "c": "é"}) == \
        '{"a":"\\u003c\\u0026\\u003e","b":[1,2,null,true],"c":"é"}'
    assert gojson.dumps({"a": [], "b": {}, "c": {"d": 1}}, indent="    ") == \
        '{\n    "a": [],\n    "b": {},\n    "c": {\n        "d": 1\n    }\n}'


@pytest.mark.parametrize("size, text", [(0, "0B"), (999, "999B"), (1000, "1kB"), (1984198, "1.98MB"),
                                        (2426880, "2.43MB"), (123456789012, "123GB")])
def test_human_size(size, text):
    assert units.human_size(size) == text


def test_binary_sizes_and_ram_parsing():
    assert units.bytes_size(315392) == "308KiB"
    assert units.bytes_size(1.5 * 1024 ** 3) == "1.5GiB"
    assert units.ram_in_bytes("64m") == 64 << 20
    assert units.ram_in_bytes("1.5g") == 3 << 29
    assert units.ram_in_bytes("1024") == 1024
    assert units.ram_in_bytes("2GiB") == 2 << 30
    for bad in ("12x", "", "-1m", "m"):
        with pytest.raises(ValueError):
            units.ram_in_bytes(bad)


@pytest.mark.parametrize("seconds, text", [(0.5, "Less than a second"), (1, "1 second"), (59, "59 seconds"),
                                           (60, "About a minute"), (150, "2 minutes"), (3600, "About an hour"),
                                           (3 * 3600, "3 hours"), (3 * 86400, "3 days"), (20 * 86400, "2 weeks"),
                                           (90 * 86400, "3 months"), (800 * 86400, "2 years")])
def test_human_duration(seconds, text):
    assert units.human_duration(seconds) == text


def test_times():
    assert units.parse_rfc3339("2026-11-22T10:39:03.947197183Z") == pytest.approx(1795343943.947197183)
    assert units.parse_rfc3339("2026-11-22T11:39:03+01:00") == 1795343943
    assert units.timestamp_argument("1700000000.5") == "1700000000.5"
    assert units.timestamp_argument("10m", now=1000.0) == "400"
    assert units.timestamp_argument("2026-11-22T10:39:03.5Z") == "1795343943.500000000"
    with pytest.raises(ValueError):
        units.timestamp_argument("yesterday")
    assert units.rfc3339_nano_local(1795343943947197183).startswith("2026-11-2")


def test_tabwriter_like_gos():
    # docker ps's header and a row, from a capture of the real CLI
    lines = ["CONTAINER ID\tIMAGE\tCOMMAND\tCREATED\tSTATUS\tPORTS\tNAMES",
             "914a01c60e40\tbusybox\t\"sh -c 'echo out1; e…\"\t22 seconds ago\tUp 21 seconds\t\tresearch-cap1"]
    assert tabwrite(lines) == (
        "CONTAINER ID   IMAGE     COMMAND                  CREATED          STATUS          PORTS     NAMES\n"
        "914a01c60e40   busybox   \"sh -c 'echo out1; e…\"   22 seconds ago   Up 21 seconds             research-cap1\n")


def test_format_table_json_and_template():
    rows = [{"ID": "abc", "Names": "web", "Labels": "<a>"}]
    headers = {"ID": "CONTAINER ID", "Names": "NAMES"}
    assert Format("table {{.ID}}\\t{{.Names}}", "", headers).render(rows) == "CONTAINER ID   NAMES\nabc            web\n"
    assert Format("{{.Names}}", "", headers).render(rows) == "web\n"
    assert Format("json", "", headers).render(rows) == '{"ID":"abc","Labels":"\\u003ca\\u003e","Names":"web"}\n'
    assert Format("", "table {{.Names}}", headers).render([]) == "NAMES\n"


def test_ps_row_as_docker_shows_it():
    c = {"Id": "914a01c60e40f0c0af93b920d258a77b5ca5dfe8fb82b866706539ddbd0f8da5", "Names": ["/research-cap1"],
         "Image": "busybox", "Command": "sh -c 'echo out1; echo err1 >&2; sleep 300'", "Created": 1000,
         "Ports": [{"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"}],
         "Labels": {"b": "2", "a": "1"}, "State": "running", "Status": "Up 21 seconds"}
    row = container_row(c, True, 1022)
    assert (row["ID"], row["Names"], row["Command"], row["RunningFor"]) == \
        ("914a01c60e40", "research-cap1", '"sh -c \'echo out1; e…"', "22 seconds ago")
    assert (row["Ports"], row["Labels"], row["Label"]("b")) == ("0.0.0.0:8080->80/tcp", "a=1,b=2", "2")
    assert go_quote('a"b\\c\n\x01…') == '"a\\"b\\\\c\\n\\x01…"'


def test_option_parsing_like_pflag():
    opts, args = parse(containeropts.RUN_SPEC, ["-dit", "--name=web", "-eA=1", "-e", "B=2", "--rm=false",
                                                "busybox", "sh", "-c", "ls -l"])
    assert (opts.detach, opts.interactive, opts.tty, opts.name, opts.env, opts.rm) == \
        (True, True, True, "web", ["A=1", "B=2"], False)
    assert args == ["busybox", "sh", "-c", "ls -l"]  # run stops at the image: the command keeps its flags
    opts, args = parse(containeropts.RUN_SPEC, ["--net", "host", "--", "busybox"])
    assert (opts.network, args) == ("host", ["busybox"])
    with pytest.raises(UsageError) as e:
        parse(containeropts.RUN_SPEC, ["--nope", "busybox"])
    assert (str(e.value), e.value.status) == ("unknown flag: --nope", 125)
    with pytest.raises(UsageError) as e:
        parse(containeropts.RUN_SPEC, [])
    assert e.value.status == 1


def _body(argv: list[str], detach: bool = False) -> dict:
    opts, args = parse(containeropts.RUN_SPEC, argv)
    return containeropts.build(opts, args, detach=detach, console_size=None)


def test_create_body_bytes_match_a_docker_capture():
    """The docker CLI's create request for `run --rm busybox sh -c 'echo hello; echo oops >&2; exit 3'`,
    recorded on the wire (notes/docker-cli-wire-captures.md); GwPriority and DNSNames come from v28's types."""
    expected = (
        '{"Hostname":"","Domainname":"","User":"","AttachStdin":false,"AttachStdout":true,"AttachStderr":true,'
        '"Tty":false,"OpenStdin":false,"StdinOnce":false,"Env":null,"Cmd":["sh","-c","echo hello; echo oops '
        '\\u003e\\u00262; exit 3"],"Image":"busybox","Volumes":{},"WorkingDir":"","Entrypoint":null,"OnBuild":null,'
        '"Labels":{},"HostConfig":{"Binds":null,"ContainerIDFile":"","LogConfig":{"Type":"","Config":{}},'
        '"NetworkMode":"default","PortBindings":{},"RestartPolicy":{"Name":"no","MaximumRetryCount":0},'
        '"AutoRemove":true,"VolumeDriver":"","VolumesFrom":null,"ConsoleSize":[0,0],"CapAdd":null,"CapDrop":null,'
        '"CgroupnsMode":"","Dns":[],"DnsOptions":[],"DnsSearch":[],"ExtraHosts":null,"GroupAdd":null,"IpcMode":"",'
        '"Cgroup":"","Links":null,"OomScoreAdj":0,"PidMode":"","Privileged":false,"PublishAllPorts":false,'
        '"ReadonlyRootfs":false,"SecurityOpt":null,"UTSMode":"","UsernsMode":"","ShmSize":0,"Isolation":"",'
        '"CpuShares":0,"Memory":0,"NanoCpus":0,"CgroupParent":"","BlkioWeight":0,"BlkioWeightDevice":[],'
        '"BlkioDeviceReadBps":[],"BlkioDeviceWriteBps":[],"BlkioDeviceReadIOps":[],"BlkioDeviceWriteIOps":[],'
        '"CpuPeriod":0,"CpuQuota":0,"CpuRealtimePeriod":0,"CpuRealtimeRuntime":0,"CpusetCpus":"","CpusetMems":"",'
        '"Devices":[],"DeviceCgroupRules":null,"DeviceRequests":null,"MemoryReservation":0,"MemorySwap":0,'
        '"MemorySwappiness":-1,"OomKillDisable":false,"PidsLimit":0,"Ulimits":[],"CpuCount":0,"CpuPercent":0,'
        '"IOMaximumIOps":0,"IOMaximumBandwidth":0,"MaskedPaths":null,"ReadonlyPaths":null},"NetworkingConfig":'
        '{"EndpointsConfig":{"default":{"IPAMConfig":null,"Links":null,"Aliases":null,"MacAddress":"",'
        '"DriverOpts":null,"GwPriority":0,"NetworkID":"","EndpointID":"","Gateway":"","IPAddress":"",'
        '"IPPrefixLen":0,"IPv6Gateway":"","GlobalIPv6Address":"","GlobalIPv6PrefixLen":0,"DNSNames":null}}}}')
    body = _body(["--rm", "busybox", "sh", "-c", "echo hello; echo oops >&2; exit 3"])
    assert gojson.dumps(body) == expected


def test_create_body_options():
    body = _body(["-d", "-i", "-t", "-e", "A=1", "-l", "z=1", "-l", "a=2", "--cap-add", "net_admin", "--cap-drop",
                  "ALL", "-m", "64m", "--cpus", "1.5", "--restart", "on-failure:3", "--ulimit", "nofile=10:20",
                  "--stop-timeout", "5", "--tmpfs", "/run:size=1m", "-v", "/h:/c:ro", "-v", "/anon",
                  "--entrypoint", "", "busybox"], detach=True)
    host = body["HostConfig"]
    assert (body["AttachStdin"], body["OpenStdin"], body["StdinOnce"], body["Tty"]) == (False, True, False, True)
    assert (body["Env"], list(body["Labels"]), body["Entrypoint"], body["Cmd"]) == (["A=1"], ["a", "z"], [""], None)
    assert (host["CapAdd"], host["CapDrop"], host["Memory"], host["NanoCpus"]) == \
        (["CAP_NET_ADMIN"], ["ALL"], 64 << 20, 1_500_000_000)
    assert host["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert host["Ulimits"] == [{"Name": "nofile", "Hard": 20, "Soft": 10}]
    assert (body["StopTimeout"], host["Tmpfs"], host["Binds"], body["Volumes"]) == \
        (5, {"/run": "size=1m"}, ["/h:/c:ro"], {"/anon": {}})
    with pytest.raises(CommandError):
        _body(["--rm", "--restart", "always", "busybox"])
    with pytest.raises(CommandError):
        _body(["--restart", "sometimes", "busybox"])


def test_stdcopy_frames_are_demultiplexed(tmp_path):
    out, err = os.open(tmp_path / "out", os.O_RDWR | os.O_CREAT), os.open(tmp_path / "err", os.O_RDWR | os.O_CREAT)
    demux = Demux(out, err)
    stream = b"\x01\x00\x00\x00\x00\x00\x00\x06hello\n" + b"\x02\x00\x00\x00\x00\x00\x00\x05oops\n"
    for i in range(len(stream)):  # byte by byte: frames split anywhere
        demux.feed(stream[i:i + 1])
    os.close(out)
    os.close(err)
    assert ((tmp_path / "out").read_bytes(), (tmp_path / "err").read_bytes()) == (b"hello\n", b"oops\n")
    with pytest.raises(CommandError):
        Demux(1, 2).feed(b"\x03\x00\x00\x00\x00\x00\x00\x04boom")


def test_detach_keys():
    assert detach_key_bytes("ctrl-p,ctrl-q") == b"\x10\x11"
    assert detach_key_bytes("a,ctrl-[") == b"a\x1b"
    detector = EscapeDetector(b"\x10\x11")
    assert detector.feed(b"ab\x10") == (b"ab", False)  # held back: it may begin the sequence
    assert detector.feed(b"x") == (b"\x10x", False)     # it did not
    assert detector.feed(b"\x10\x10") == (b"\x10", False)
    assert detector.feed(b"\x11rest") == (b"", True)


def test_cli_starts_without_heavy_modules():
    """The start-up path imports neither json, re, enum, socket, signal nor argparse."""
    code = ("from orlop.cli.main import main; main(['-H', 'unix:///nonexistent/orlop.sock', 'ps'])\n"
            "heavy = {'json', 're', 'enum', 'socket', 'signal', 'argparse', 'http.client', 'email'} & "
            "set(sys.modules)\n"
            "print(sorted(heavy))")
    done = subprocess.run([sys.executable, "-I", "-S", "-c", f"import sys; sys.path.insert(0, {SRC!r})\n" + code],
                          capture_output=True, text=True, check=True)
    assert done.stdout.splitlines()[-1] == "[]"


SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "src")
