"""Validators of the typed payloads: each topic's JSON Schema file and the AsyncAPI document's
messages, with the document's references to the schema files resolved (as a code generator would)."""

from __future__ import annotations

import functools
import json
from typing import Any

import jsonschema
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from services.common.topics import SCHEMA_DIR, Topic

BASE = "https://cryptopulse.dev/schemas/"
ASYNCAPI_URI = BASE + "asyncapi.yaml"


def asyncapi_doc() -> dict[str, Any]:
    return dict(yaml.safe_load((SCHEMA_DIR / "asyncapi.yaml").read_text()))


@functools.cache
def _registry() -> Registry:
    resources = []
    for path in SCHEMA_DIR.glob("*.schema.json"):
        schema = json.loads(path.read_text())
        assert schema["$id"] == BASE + path.name, f"{path.name}: $id must be {BASE + path.name}"
        resources.append((schema["$id"], Resource.from_contents(schema)))
    resources.append((ASYNCAPI_URI, Resource.from_contents(asyncapi_doc(), default_specification=DRAFT202012)))
    return Registry().with_resources(resources)


@functools.cache
def message_validator(name: str) -> jsonschema.Draft202012Validator:
    """Validator of ``components.messages.<name>.payload`` of the AsyncAPI document."""
    schema = {"$ref": f"{ASYNCAPI_URI}#/components/messages/{name}/payload"}
    return jsonschema.Draft202012Validator(schema, registry=_registry())


def topic_validator(topic: Topic) -> jsonschema.Draft202012Validator:
    return _schema_validator(topic.schema)


@functools.cache
def _schema_validator(schema_file: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator({"$ref": BASE + schema_file}, registry=_registry())


def undeclared_fields(schema: dict[str, Any], value: Any, path: str = "") -> list[str]:
    """Paths of object members that ``schema`` does not declare (it allows them, but a typed payload
    should name every field it carries). Follows ``properties`` and ``items``."""
    found: list[str] = []
    if isinstance(value, dict) and "properties" in schema:
        declared = schema["properties"]
        for key, member in value.items():
            if key not in declared:
                found.append(f"{path}.{key}")
            else:
                found += undeclared_fields(declared[key], member, f"{path}.{key}")
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value[:5]:
            found += undeclared_fields(schema["items"], item, f"{path}[]")
    return found


def schema_of(topic: Topic) -> dict[str, Any]:
    return dict(json.loads(topic.schema_path.read_text()))
