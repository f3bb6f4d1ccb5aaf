#!/usr/bin/env python3
"""Regenerates the body of protocol/src/guard/shapes.rs from Kafka's message schemas.

Usage: gen_shapes.py <dir with apache/kafka clients/src/main/resources/common/message/*Request.json>
Prints the shape constants to stdout; paste them below the header of shapes.rs.
The output is meant to be read and reviewed like hand-written code: one const per API.
"""
import json
import os
import re
import sys

# Keep in step with versions::SUPPORTED (the guard only needs shapes for these).
SUPPORTED = [
    ("ApiVersions", 0, 4), ("Metadata", 0, 12), ("Produce", 0, 11), ("Fetch", 4, 17),
    ("ListOffsets", 1, 9), ("OffsetForLeaderEpoch", 2, 4), ("CreateTopics", 2, 7),
    ("DeleteTopics", 1, 6), ("CreatePartitions", 0, 3), ("DeleteRecords", 0, 2),
    ("InitProducerId", 0, 5), ("DescribeCluster", 0, 1), ("DescribeConfigs", 1, 4),
    ("AlterConfigs", 0, 2), ("IncrementalAlterConfigs", 0, 1), ("DescribeLogDirs", 1, 4),
    ("FindCoordinator", 0, 6), ("JoinGroup", 0, 9), ("SyncGroup", 0, 5), ("Heartbeat", 0, 4),
    ("LeaveGroup", 0, 5), ("OffsetCommit", 2, 9), ("OffsetFetch", 1, 9), ("ListGroups", 0, 5),
    ("DescribeGroups", 0, 5), ("DeleteGroups", 0, 2), ("OffsetDelete", 0, 0),
    ("SaslHandshake", 0, 1), ("SaslAuthenticate", 0, 2), ("CreateAcls", 1, 3),
    ("DescribeAcls", 1, 3), ("DeleteAcls", 1, 3), ("DescribeUserScramCredentials", 0, 0),
    ("AlterUserScramCredentials", 0, 0),
]
PRIM = {"int8": "Int8", "int16": "Int16", "uint16": "UInt16", "int32": "Int32", "uint32": "UInt32",
        "int64": "Int64", "float64": "Float64", "uuid": "Uuid", "bool": "Bool", "string": "String",
        "bytes": "Bytes", "records": "Records"}


def load(path):
    # Kafka's schemas carry `//` comment lines, which JSON does not allow.
    text = "\n".join(l for l in open(path).read().splitlines() if not l.strip().startswith("//"))
    return json.loads(text)


def parse_versions(s):
    if s == "none":
        return (1, 0)
    if s.endswith("+"):
        return (int(s[:-1]), None)
    if "-" in s:
        a, b = s.split("-")
        return (int(a), int(b))
    return (int(s), int(s))


def versions_expr(s):
    lo, hi = parse_versions(s)
    if (lo, hi) == (1, 0):
        return "NEVER"
    return f"from({lo})" if hi is None else f"range({lo}, {hi})"


def snake(name):
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def emit(fields, common, indent, out):
    for fd in fields:
        ty = fd["type"]
        is_array = ty.startswith("[]")
        base = ty[2:] if is_array else ty
        tag = ""
        if "tag" in fd:
            if parse_versions(fd["taggedVersions"]) != parse_versions(fd["versions"]):
                sys.exit(f"field {fd['name']}: taggedVersions != versions is not supported by the DSL")
            tag = f".tagged({fd['tag']})"
        head = f'{indent}f("{snake(fd["name"])}", {versions_expr(fd["versions"])}, '
        if base in PRIM:
            shape = f"array(Prim::{PRIM[base]})" if is_array else PRIM[base].upper()
            out.append(f"{head}{shape}){tag},")
        else:
            if not is_array and "nullableVersions" in fd:
                sys.exit(f"field {fd['name']}: nullable structs are not supported by the DSL")
            sub = fd.get("fields") or common[base]["fields"]
            out.append(f"{head}{'structs' if is_array else 'strukt'}(&[")
            emit(sub, common, indent + "    ", out)
            out.append(f"{indent}])){tag},")


def main():
    src = sys.argv[1]
    out = []
    for name, lo, hi in SUPPORTED:
        msg = load(os.path.join(src, f"{name}Request.json"))
        valid = parse_versions(msg["validVersions"])
        if valid[0] > lo or (valid[1] is not None and valid[1] < hi):
            sys.exit(f"{name}: schema valid {msg['validVersions']} does not cover {lo}-{hi}")
        flex = parse_versions(msg["flexibleVersions"])
        common = {c["name"]: c for c in msg.get("commonStructs", [])}
        const = snake(name).upper()
        out.append(f"/// {name} request (api key {msg['apiKey']}), schema v{msg['validVersions']}, "
                   f"flexible {msg['flexibleVersions']}.")
        flex_expr = "NO_FLEXIBLE" if flex == (1, 0) else str(flex[0])
        out.append(f"pub(crate) const {const}: Message = message(ApiKey::{name}, {flex_expr}, &[")
        emit(msg["fields"], common, "    ", out)
        out.append("]);")
        out.append("")
    out.append("/// Every request shape; `shape_for` looks them up by api key.")
    out.append("pub(crate) const ALL: &[Message] = &[")
    for name, _, _ in SUPPORTED:
        out.append(f"    {snake(name).upper()},")
    out.append("];")
    print("\n".join(out))


if __name__ == "__main__":
    main()
