#!/usr/bin/env python3
"""Regenerates the guard's shapes from Kafka's message schemas.

Usage: gen_shapes.py <dir with apache/kafka clients/src/main/resources/common/message/*.json>
         prints the request shape constants; paste them below the header of shapes.rs.
       gen_shapes.py --responses <same dir>
         prints the whole of protocol/src/guard/response_shapes.rs (the responses strata-perf
         decodes and the consumer-protocol messages inside them).
Run `cargo fmt` on the result. The output is meant to be read and reviewed like hand-written
code: one const per message.
"""
import json
import os
import re
import sys

# Keep in step with versions::SUPPORTED (the guard only needs shapes for these).
SUPPORTED = [
    ("ApiVersions", 0, 4), ("Metadata", 0, 12), ("Produce", 0, 11), ("Fetch", 4, 17),
    ("ListOffsets", 1, 10), ("OffsetForLeaderEpoch", 2, 4), ("CreateTopics", 2, 7),
    ("DeleteTopics", 1, 6), ("CreatePartitions", 0, 3), ("DeleteRecords", 0, 2),
    ("InitProducerId", 0, 5), ("DescribeCluster", 0, 1), ("DescribeConfigs", 1, 4),
    ("AlterConfigs", 0, 2), ("IncrementalAlterConfigs", 0, 1), ("DescribeLogDirs", 1, 4),
    ("FindCoordinator", 0, 6), ("JoinGroup", 0, 9), ("SyncGroup", 0, 5), ("Heartbeat", 0, 4),
    ("LeaveGroup", 0, 5), ("OffsetCommit", 2, 9), ("OffsetFetch", 1, 9), ("ListGroups", 0, 5),
    ("DescribeGroups", 0, 5), ("DeleteGroups", 0, 2), ("OffsetDelete", 0, 0),
    ("SaslHandshake", 0, 1), ("SaslAuthenticate", 0, 2), ("CreateAcls", 1, 3),
    ("DescribeAcls", 1, 3), ("DeleteAcls", 1, 3), ("DescribeUserScramCredentials", 0, 0),
    ("AlterUserScramCredentials", 0, 0), ("AddPartitionsToTxn", 0, 3),
    ("AddOffsetsToTxn", 0, 4), ("EndTxn", 0, 4), ("TxnOffsetCommit", 0, 4),
    ("DescribeTransactions", 0, 0), ("ListTransactions", 0, 1), ("DescribeProducers", 0, 0),
    ("WriteTxnMarkers", 1, 1), ("DescribeClientQuotas", 0, 1), ("AlterClientQuotas", 0, 1),
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


# The responses strata-perf decodes (benches/src; InitProducerId for its idempotent producer)
# and the replica fetcher (broker/src/replication: Fetch, OffsetForLeaderEpoch),
# and the versions each shape is checked for: the schema's valid versions within the range
# kafka-protocol decodes (it reads no Produce response below v3, no Fetch below v4...), so the
# round-trip tests can prove every one.
RESPONSES = [
    ("ApiVersions", 0, 4), ("Metadata", 0, 12), ("Produce", 3, 12), ("Fetch", 4, 17),
    ("ListOffsets", 1, 10), ("CreateTopics", 2, 7), ("InitProducerId", 0, 5),
    ("FindCoordinator", 0, 6), ("JoinGroup", 0, 9), ("SyncGroup", 0, 5), ("Heartbeat", 0, 4),
    ("LeaveGroup", 0, 5), ("OffsetCommit", 2, 9), ("OffsetFetch", 1, 9),
    ("SaslHandshake", 0, 1), ("SaslAuthenticate", 0, 2), ("OffsetForLeaderEpoch", 2, 4),
]
# Versions newer than the schemas at hand that Kafka declares identical to the one before
# (strata-perf sends them to brokers that offer them). Fields still present in the last
# schema version carry over; the round-trip tests prove the layout against kafka-protocol.
SAME_AS_PREVIOUS = {
    ("Produce", 12): "Version 12 is the same as version 11 (KIP-890)",
}
# The consumer protocol's messages, which group members exchange as opaque bytes inside
# JoinGroup (subscriptions) and SyncGroup (assignments): not flexible, no api key.
EMBEDDED = [("ConsumerProtocolSubscription", 0, 3), ("ConsumerProtocolAssignment", 0, 3)]

RESPONSES_HEADER = """\
//! The shape of every response body strata-perf decodes, and of the consumer-protocol
//! messages group members exchange inside JoinGroup and SyncGroup responses, derived from
//! Kafka's message schemas (clients/src/main/resources/common/message/*Response.json,
//! ConsumerProtocol*.json). Generated whole by `protocol/tools/gen_shapes.py --responses`:
//! regenerate rather than edit. Round-trip tests against kafka-protocol prove each version.

use super::dsl::*;
use kafka_protocol::messages::ApiKey;
"""


def request_shapes(src):
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
    return out


def last_version_fields(fields, last):
    """Names of fields (at any depth) whose versions end exactly at `last`."""
    for fd in fields:
        if parse_versions(fd["versions"])[1] == last:
            yield fd["name"]
        yield from last_version_fields(fd.get("fields", []), last)


def versioned_shape(name, file, lo, hi, api, out):
    """Appends one `Shape` const for `file`'s schema, checked in versions lo..=hi."""
    msg = load(file)
    valid = parse_versions(msg["validVersions"])
    notes = []
    if valid[0] > lo:
        sys.exit(f"{name}: schema valid {msg['validVersions']} does not start by v{lo}")
    if valid[1] is not None and valid[1] < hi:
        for v in range(valid[1] + 1, hi + 1):
            if (name, v) not in SAME_AS_PREVIOUS:
                sys.exit(f"{name}: schema valid {msg['validVersions']} does not reach v{v}")
            notes.append(f"{SAME_AS_PREVIOUS[(name, v)]}.")
        ending = sorted(set(last_version_fields(msg["fields"], valid[1])))
        if ending:
            sys.exit(f"{name}: fields {ending} end at v{valid[1]}, so v{hi} cannot repeat its layout")
    flex = parse_versions(msg["flexibleVersions"])
    common = {c["name"]: c for c in msg.get("commonStructs", [])}
    what = f"{name} response (api key {msg['apiKey']})" if api else name
    out.append(f"/// {what}, schema v{msg['validVersions']}, flexible {msg['flexibleVersions']}; "
               f"checked in v{lo}-{hi}.")
    out.extend(f"/// {n}" for n in notes)
    flex_expr = "NO_FLEXIBLE" if flex == (1, 0) else str(flex[0])
    label = msg["name"]
    out.append(f'pub(crate) const {snake(name).upper()}: Shape = shape("{label}", range({lo}, {hi}), '
               f"{flex_expr}, &[")
    emit(msg["fields"], common, "    ", out)
    out.append("]);")
    out.append("")


def response_shapes(src):
    out = [RESPONSES_HEADER]
    for name, lo, hi in RESPONSES:
        versioned_shape(name, os.path.join(src, f"{name}Response.json"), lo, hi, True, out)
    out.append("/// Every response shape, by the api key of the request it answers.")
    out.append("pub(crate) const ALL: &[(ApiKey, Shape)] = &[")
    for name, _, _ in RESPONSES:
        out.append(f"    (ApiKey::{name}, {snake(name).upper()}),")
    out.append("];")
    out.append("")
    for name, lo, hi in EMBEDDED:
        versioned_shape(name, os.path.join(src, f"{name}.json"), lo, hi, False, out)
    return out


def main():
    if sys.argv[1:2] == ["--responses"]:
        out = response_shapes(sys.argv[2])
    else:
        out = request_shapes(sys.argv[1])
    print("\n".join(out).rstrip("\n"))


if __name__ == "__main__":
    main()
