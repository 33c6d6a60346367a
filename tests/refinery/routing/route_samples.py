"""Record headers for routing tests, built the way producers build them (envelope -> headers)."""

from __future__ import annotations

from common.envelope import make_envelope
from common.headers import headers_dict, metadata_to_headers

FORMAT_BY_CATEGORY = {
    "match_started": "avro",
    "player_killed": "avro",
    "purchase": "protobuf",
    "session_heartbeat": "json",
    "crash_report": "raw",
}


def record_headers(
    *,
    env: str = "prod",
    source: str = "telemetry",
    title: str = "1234",
    category: str = "match_started",
    version: int = 1,
    schema_id: int = 7,
    platform: str | None = "pc",
    **attributes: str,
) -> dict[str, bytes]:
    if platform is not None:
        attributes["platform"] = platform
    envelope = make_envelope(
        env=env,
        source=source,
        title=title,
        category=category,
        version=version,
        schema_id=schema_id,
        payload_format=FORMAT_BY_CATEGORY.get(category, "raw"),
        payload=b"{}",
        producer="tests",
        attributes=attributes,
    )
    return headers_dict(metadata_to_headers(envelope.metadata))
