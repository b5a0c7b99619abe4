"""--mount type=bind|volume|tmpfs,source=…,target=…[,readonly][,…]: the docker CLI's CSV
syntax (cli/opts/mount.go), turned into the Engine API's HostConfig.Mounts entries, with the
same errors for a malformed field."""

from __future__ import annotations

from orlop.cli.flags import UsageError

_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")
_BOOL_KEYS = ("readonly", "ro", "volume-nocopy", "bind-nonrecursive", "bind-create-src")


def _csv_fields(value: str) -> list[str]:
    """One CSV record as Go's encoding/csv reads it: commas separate, a field that starts
    with a double quote is quoted ("" inside is a quote); errors name Go's column."""
    fields: list[str] = []
    i, n = 0, len(value)
    while True:
        current = []
        if i < n and value[i] == '"':
            i += 1
            while True:
                if i >= n:
                    raise UsageError(f'parse error on line 1, column {n + 1}: extraneous or missing " in '
                                     "quoted-field")
                if value[i] == '"':
                    if value[i + 1:i + 2] == '"':
                        current.append('"')
                        i += 2
                        continue
                    if i + 1 < n and value[i + 1] != ",":
                        raise UsageError(f'parse error on line 1, column {i + 1}: extraneous or missing " in '
                                         "quoted-field")
                    i += 1
                    break
                current.append(value[i])
                i += 1
        else:
            while i < n and value[i] != ",":
                if value[i] == '"':
                    raise UsageError(f'parse error on line 1, column {i + 1}: bare " in non-quoted-field')
                current.append(value[i])
                i += 1
        fields.append("".join(current))
        if i >= n:
            return fields
        i += 1  # the comma


def _bool(key: str, text: str, field: str) -> bool:
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise UsageError(f"invalid value for {key}: {text}")


def parse(value: str) -> dict:
    """One --mount value as a Mount object of the Engine API."""
    from orlop.cli.units import ram_in_bytes

    mount: dict = {"Type": "volume"}
    volume: dict = {}
    bind: dict = {}
    tmpfs: dict = {}
    for field in _csv_fields(value):
        key, eq, val = field.partition("=")
        key = key.strip().lower()
        if not eq:
            if key in _BOOL_KEYS:
                val = "true"
            else:
                raise UsageError(f"invalid field '{field}' must be a key=value pair")
        if key == "type":
            mount["Type"] = val.lower()
        elif key in ("source", "src"):
            mount["Source"] = val
        elif key in ("target", "dst", "destination"):
            mount["Target"] = val
        elif key in ("readonly", "ro"):
            mount["ReadOnly"] = _bool(key, val, field)
        elif key == "consistency":
            mount["Consistency"] = val.lower()
        elif key == "bind-propagation":
            bind["Propagation"] = val.lower()
        elif key == "bind-nonrecursive":
            bind["NonRecursive"] = _bool(key, val, field)
        elif key == "bind-create-src":
            bind["CreateMountpoint"] = _bool(key, val, field)
        elif key == "volume-nocopy":
            volume["NoCopy"] = _bool(key, val, field)
        elif key == "volume-subpath":
            volume["Subpath"] = val
        elif key == "volume-driver":
            volume.setdefault("DriverConfig", {})["Name"] = val
        elif key in ("volume-label", "volume-opt"):
            name, has_value, opt_value = val.partition("=")
            if key == "volume-opt" and not has_value:
                raise UsageError(f"invalid value for volume-opt: {val}")
            where = volume.setdefault("Labels", {}) if key == "volume-label" else \
                volume.setdefault("DriverConfig", {}).setdefault("Options", {})
            where[name] = opt_value
        elif key == "tmpfs-size":
            try:
                tmpfs["SizeBytes"] = ram_in_bytes(val)
            except ValueError:
                raise UsageError(f"invalid value for {key}: {val}") from None
        elif key == "tmpfs-mode":
            try:
                tmpfs["Mode"] = int(val, 8)
            except ValueError:
                raise UsageError(f"invalid value for {key}: {val}") from None
        else:
            raise UsageError(f"unexpected key '{key}' in '{field}'")
    if not mount.get("Type"):
        raise UsageError("type is required")
    if not mount.get("Target"):
        raise UsageError("target is required")
    for options, kind, prefix in ((volume, "volume", "volume-*"), (bind, "bind", "bind-*"),
                                  (tmpfs, "tmpfs", "tmpfs-*")):
        if options and mount["Type"] != kind:
            raise UsageError(f"cannot mix '{prefix}' options with mount type '{mount['Type']}'")
    if bind:
        mount["BindOptions"] = _ordered(bind, ("Propagation", "NonRecursive", "CreateMountpoint"))
    if volume:
        if "DriverConfig" in volume:
            driver = volume["DriverConfig"]
            if "Options" in driver:
                driver["Options"] = dict(sorted(driver["Options"].items()))
            volume["DriverConfig"] = _ordered(driver, ("Name", "Options"))
        if "Labels" in volume:
            volume["Labels"] = dict(sorted(volume["Labels"].items()))
        mount["VolumeOptions"] = _ordered(volume, ("NoCopy", "Labels", "Subpath", "DriverConfig"))
    if tmpfs:
        mount["TmpfsOptions"] = _ordered(tmpfs, ("SizeBytes", "Mode"))
    # The docker CLI's JSON: Go's field order, empty fields left out.
    return _ordered(mount, ("Type", "Source", "Target", "ReadOnly", "Consistency", "BindOptions",
                            "VolumeOptions", "TmpfsOptions"))


def _ordered(fields: dict, order: tuple[str, ...]) -> dict:
    return {key: fields[key] for key in order if fields.get(key)}
