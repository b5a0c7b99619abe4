"""Device cgroup rules and the process environment, as dockerd makes them."""

from __future__ import annotations

import pytest

from orlop.containers import devices, spec
from orlop.errors import InvalidParameter


@pytest.mark.parametrize("text, rule", [
    ("c 1:3 mr", {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "mr"}),
    ("b *:* rwm", {"allow": True, "type": "b", "access": "rwm"}),
    ("a 7:* w", {"allow": True, "type": "a", "major": 7, "access": "w"}),
])
def test_device_cgroup_rules(text, rule):
    assert devices.cgroup_rule(text) == rule


@pytest.mark.parametrize("text", ["c 1:3", "x 1:3 r", "c 1-3 r", "c 1:3 rwx"])
def test_bad_device_cgroup_rules(text):
    with pytest.raises(InvalidParameter, match="invalid device cgroup rule format"):
        devices.cgroup_rule(text)


def test_a_device_is_a_node_and_an_allow_rule():
    nodes, rules = devices.for_container({"Devices": [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/n",
                                                       "CgroupPermissions": "r"}]})
    assert nodes[0]["path"] == "/dev/n" and (nodes[0]["type"], nodes[0]["major"], nodes[0]["minor"]) == ("c", 1, 3)
    assert rules == [{"allow": True, "type": "c", "major": 1, "minor": 3, "access": "r"}]
    with pytest.raises(InvalidParameter, match="not a device node"):
        devices.for_container({"Devices": [{"PathOnHost": "/etc/hostname"}]})


def test_a_bare_name_unsets_the_variable():
    env = spec.process_env(["A=1", "B=2"], ["B", "C=3", "PATH"], {"PATH": "/bin", "HOSTNAME": "h"})
    assert env == ["A=1", "C=3", "HOSTNAME=h"]
