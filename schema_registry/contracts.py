"""Confluent data contracts: the `metadata` and `ruleSet` of a schema version.

They are stored in the SCHEMA record next to the schema, returned wherever Confluent returns them, and
part of a version's identity: the same schema with other metadata is another version (and another id),
as in Confluent, whose schema hash covers both. Like Confluent, a registration that sends neither
inherits them from the subject's latest version (`KafkaSchemaRegistry.maybeSetMetadataRuleSet`, without
the config-level default/override metadata this registry does not have), and a lookup that finds no
exact match tries again with the latest version's metadata and rule set filled in.

Bodies are read as Confluent's Jackson entities read them: unknown keys are dropped, empty members are
left out, and an object left empty counts as absent.
"""

from __future__ import annotations

from typing import Any

from schema_registry.errors import ErrorCode, invalid
from schema_registry.records import canonical_json

RULE_LISTS = ("migrationRules", "domainRules", "encodingRules")


def parse_metadata(raw: Any) -> str | None:
    """`{"tags": {path: [tag]}, "properties": {name: value}, "sensitive": [name]}` as canonical JSON."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise invalid(ErrorCode.INVALID_SCHEMA, "'metadata' must be an object")
    doc: dict[str, Any] = {}
    tags = raw.get("tags")
    if tags:
        if not isinstance(tags, dict) or not all(isinstance(v, list) for v in tags.values()):
            raise invalid(ErrorCode.INVALID_SCHEMA, "'metadata.tags' must map names to lists of tags")
        doc["tags"] = {str(k): sorted({str(t) for t in v}) for k, v in tags.items()}
    properties = raw.get("properties")
    if properties:
        if not isinstance(properties, dict):
            raise invalid(ErrorCode.INVALID_SCHEMA, "'metadata.properties' must be an object")
        doc["properties"] = {str(k): str(v) for k, v in properties.items()}
    sensitive = raw.get("sensitive")
    if sensitive:
        if not isinstance(sensitive, list):
            raise invalid(ErrorCode.INVALID_SCHEMA, "'metadata.sensitive' must be a list")
        doc["sensitive"] = sorted({str(s) for s in sensitive})
    return canonical_json(doc)


def parse_rule_set(raw: Any) -> str | None:
    """`{"migrationRules": [...], "domainRules": [...], "encodingRules": [...]}` as canonical JSON."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise invalid(ErrorCode.INVALID_RULESET, "'ruleSet' must be an object")
    doc: dict[str, Any] = {}
    for name in RULE_LISTS:
        rules = raw.get(name)
        if not rules:
            continue
        if not isinstance(rules, list) or not all(isinstance(r, dict) and r.get("name") for r in rules):
            raise invalid(ErrorCode.INVALID_RULESET, f"'ruleSet.{name}' must be a list of rules with a name")
        doc[name] = rules
    if raw.get("enableAt") is not None:
        doc["enableAt"] = raw["enableAt"]
    return canonical_json(doc)
