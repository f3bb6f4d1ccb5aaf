"""ACLs through confluent-kafka's AdminClient.

usage: sec_acl.py MODE BOOTSTRAP CONFIG_JSON [ARGS...]
  create SPEC...      each SPEC is TYPE:NAME:PATTERN:PRINCIPAL:OPERATION:PERMISSION
                      (host '*'), e.g. TOPIC:orders:LITERAL:User=alice:WRITE:ALLOW
                      (principal 'User=alice' stands for User:alice); prints 'created N'
  describe FILTER     FILTER like SPEC, 'ANY' anywhere for 'any' (NAME 'ANY' means null);
                      prints sorted SPECs, one per line, or 'error NAME'
  delete FILTER       prints 'deleted N' then the deleted SPECs
  configs-json FILE   prints client.properties FILE mapped to librdkafka settings as JSON
"""

import json
import sys

from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

from strata_common import CLIENT_TIMEOUT_S, run


def parse(spec, filter_=False):
    rtype, name, pattern, principal, op, perm = spec.split(":")
    any_ = lambda v: filter_ and v == "ANY"  # noqa: E731
    return (
        ResourceType[rtype],
        None if any_(name) else name,
        ResourcePatternType[pattern],
        None if any_(principal) else principal.replace("=", ":", 1),
        None if filter_ else "*",
        AclOperation[op],
        AclPermissionType[perm],
    )


def show(b):
    principal = b.principal.replace(":", "=", 1)
    return ":".join(
        [b.restype.name, b.name, b.resource_pattern_type.name, principal,
         b.operation.name, b.permission_type.name]
    )


def client_properties_to_librdkafka(path):
    """Maps Kafka's client.properties keys to librdkafka's (the JAAS line to username/password)."""
    props = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                k, v = line.split("=", 1)
                props[k.strip()] = v.strip()
    jaas = props["sasl.jaas.config"]
    field = lambda name: jaas.split(f'{name}="', 1)[1].split('"', 1)[0]  # noqa: E731
    if props.get("ssl.truststore.type", "PEM") != "PEM":
        raise SystemExit("expected ssl.truststore.type=PEM")
    return {
        "security.protocol": props["security.protocol"],
        "sasl.mechanism": props["sasl.mechanism"],
        "sasl.username": field("username"),
        "sasl.password": field("password"),
        "ssl.ca.location": props["ssl.truststore.location"],
    }


def main():
    mode, bootstrap, conf_json, *args = sys.argv[1:]
    if mode == "configs-json":
        return json.dumps(client_properties_to_librdkafka(args[0]))
    conf = dict(json.loads(conf_json), **{"bootstrap.servers": bootstrap})
    admin = AdminClient(conf)
    try:
        if mode == "create":
            bindings = [AclBinding(*parse(s)) for s in args]
            for f in admin.create_acls(bindings, request_timeout=CLIENT_TIMEOUT_S).values():
                f.result(CLIENT_TIMEOUT_S)
            return f"created {len(bindings)}"
        if mode == "describe":
            found = admin.describe_acls(AclBindingFilter(*parse(args[0], True))).result(CLIENT_TIMEOUT_S)
            return "\n".join(sorted(show(b) for b in found)) or "none"
        if mode == "delete":
            futures = admin.delete_acls([AclBindingFilter(*parse(args[0], True))])
            deleted = [b for f in futures.values() for b in f.result(CLIENT_TIMEOUT_S)]
            return "\n".join([f"deleted {len(deleted)}"] + sorted(show(b) for b in deleted))
    except KafkaException as e:
        return f"error {e.args[0].name()}"
    raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    run(main)
