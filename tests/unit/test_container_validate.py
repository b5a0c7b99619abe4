"""A create request is checked as dockerd checks it: the field is named, the request refused."""

from __future__ import annotations

import pytest

from orlop.containers import validate
from orlop.errors import InvalidParameter


def test_a_string_command_is_a_one_element_list():
    body = {"Cmd": "echo hi", "Entrypoint": "sh"}
    validate.config(body)
    assert body == {"Cmd": ["echo hi"], "Entrypoint": ["sh"]}


@pytest.mark.parametrize("body, message", [
    ({"Cmd": 5}, "Config.Cmd of type []string"),
    ({"Env": "A=1"}, "Config.Env of type []string"),
    ({"Env": [""]}, "invalid environment variable"),
    ({"Env": ["=x"]}, "invalid environment variable"),
    ({"Labels": ["a"]}, "Config.Labels of type map[string]string"),
    ({"WorkingDir": "rel"}, "needs to be an absolute path"),
    ({"StopSignal": "SIGNOPE"}, "Invalid signal: SIGNOPE"),
    ({"StopSignal": "99"}, "Invalid signal: 99"),
])
def test_bad_configs_are_named(body, message):
    with pytest.raises(InvalidParameter, match=message.replace("[", r"\[").replace("]", r"\]")):
        validate.config(body)


@pytest.mark.parametrize("hc, message", [
    ({"Memory": "lots"}, "HostConfig.Memory of type int64"),
    ({"Memory": True}, "HostConfig.Memory of type int64"),
    ({"OomScoreAdj": 5000}, "oom score adj"),
    ({"Binds": ["bad name!:/x"]}, "invalid characters for a local volume name"),
    ({"Binds": ["/a:rel"]}, "mount path must be absolute"),
    ({"Binds": ["/a:/b:zz"]}, "invalid mode: zz"),
    ({"Binds": ["/a"]}, "invalid volume specification"),
    ({"Ulimits": [{"Name": "nofile", "Soft": 10, "Hard": 5}]}, "soft limit must be less"),
])
def test_bad_host_configs_are_named(hc, message):
    with pytest.raises(InvalidParameter, match=message):
        validate.host_config(hc)


def test_good_binds_and_signals_pass():
    assert validate.parse_bind("/a:/b:ro,rshared") == ("/a", "/b", ["ro", "rshared"])
    assert validate.signal_number("usr1", 15) == 10 and validate.signal_number("SIGKILL", 15) == 9
    assert validate.signal_number(None, 15) == 15
    validate.host_config({"Memory": 64 << 20, "NanoCpus": 500_000_000, "Binds": ["/x:/y"]})
