"""Validates live berthd responses against the Engine API spec.

    python schema_check.py SPEC METHOD PATH [STATUS] < response.json

checks the JSON on stdin against the response schema the spec gives for
METHOD PATH (a spec path such as /containers/{id}/json) and STATUS (default:
the 2xx the spec lists). Exit 0 and "valid" when it conforms, exit 1 and one
line per violation otherwise.

The spec is Swagger 2.0: `x-nullable: true` marks the fields that may be
null, every other field of a listed type must have that type (arrays are
`[]`, never null). Unknown extra fields are allowed, as they are for
dockerd's clients.
"""
import json
import sys

import jsonschema
import yaml


def nullable(schema):
    """Rewrites x-nullable fields so JSON Schema accepts null for them."""
    if isinstance(schema, dict):
        out = {k: nullable(v) for k, v in schema.items()}
        if out.get("x-nullable") and "$ref" in out:
            # Draft 4 ignores a $ref's siblings: wrap it instead.
            return {"anyOf": [{"$ref": out["$ref"]}, {"type": "null"}]}
        if out.get("x-nullable") and "type" in out:
            t = out["type"]
            out["type"] = (t if isinstance(t, list) else [t]) + ["null"]
            if "enum" in out:
                out["enum"] = list(out["enum"]) + [None]
        return out
    if isinstance(schema, list):
        return [nullable(v) for v in schema]
    return schema


def response_schema(spec, method, path, status=None):
    op = spec["paths"][path][method.lower()]
    responses = op["responses"]
    if status is None:
        status = next(s for s in map(str, responses) if s.startswith("2"))
    resp = responses.get(status) or responses.get(int(status))
    if resp is None:
        raise SystemExit(f"the spec has no {status} response for {method} {path}")
    if "schema" not in resp:
        raise SystemExit(f"the spec gives no schema for {method} {path} {status}")
    return resp["schema"]


# Fields the spec does not mark x-nullable but dockerd sends as null (a nil
# Go map), and clients expect so: (definition, property).
DOCKERD_NULLS = [
    ("IPAM", "Options"),  # a network created without IPAM options
    ("EndpointSettings", "Aliases"),  # an endpoint given no aliases
] + [
    # A container's HostConfig: nil slices and maps, and the resources
    # dockerd leaves unset (MemorySwappiness -1 is stored as nil).
    ("Resources", p)
    for p in (
        "BlkioDeviceReadBps BlkioDeviceReadIOps BlkioDeviceWriteBps "
        "BlkioDeviceWriteIOps BlkioWeightDevice DeviceCgroupRules "
        "DeviceRequests Devices MemorySwappiness Ulimits"
    ).split()
] + [
    ("HostConfig", p)
    for p in (
        "Binds CapAdd CapDrop Dns DnsOptions DnsSearch ExtraHosts GroupAdd "
        "Links PortBindings SecurityOpt VolumesFrom MaskedPaths ReadonlyPaths"
    ).split()
] + [("DeviceRequest", p) for p in ("DeviceIDs", "Capabilities", "Options")]


def properties(definition):
    """The properties of a definition, including those of inline allOf parts."""
    if "properties" in definition:
        return definition["properties"]
    for part in definition.get("allOf", []):
        if "properties" in part:
            return part["properties"]
    raise KeyError("definition without properties")


def validate(spec, method, path, document, status=None):
    """Returns the list of violations (empty when valid)."""
    schema = dict(response_schema(spec, method, path, status))
    definitions = json.loads(json.dumps(spec["definitions"]))
    for name, prop in DOCKERD_NULLS:
        properties(definitions[name])[prop]["x-nullable"] = True
    schema["definitions"] = definitions
    schema = nullable(schema)
    validator = jsonschema.Draft4Validator(schema)
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
        for e in validator.iter_errors(document)
    ]


def main():
    spec_path, method, path = sys.argv[1:4]
    status = sys.argv[4] if len(sys.argv) > 4 else None
    with open(spec_path) as f:
        spec = yaml.safe_load(f)
    document = json.load(sys.stdin)
    errors = validate(spec, method, path, document, status)
    if errors:
        for e in errors[:50]:
            print(e)
        sys.exit(1)
    print("valid")


if __name__ == "__main__":
    main()
