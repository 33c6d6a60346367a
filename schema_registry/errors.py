"""Confluent's error codes in one enum, and the domain exceptions the service raises.

Routers never catch these: `schema_registry.api.errors` registers one handler that renders every
RegistryError as `{"error_code": N, "message": "..."}` with the HTTP status Confluent uses.
"""

from __future__ import annotations

from enum import IntEnum

from common.errors import InvalidInputError, RefineryError


class ErrorCode(IntEnum):
    """Confluent Schema Registry error codes (the HTTP status is the first three digits)."""

    UNAUTHORIZED = 40101
    FORBIDDEN = 40301
    SUBJECT_NOT_FOUND = 40401
    VERSION_NOT_FOUND = 40402
    SCHEMA_NOT_FOUND = 40403
    SUBJECT_SOFT_DELETED = 40404
    SUBJECT_NOT_SOFT_DELETED = 40405
    SCHEMAVERSION_SOFT_DELETED = 40406
    SCHEMAVERSION_NOT_SOFT_DELETED = 40407
    SUBJECT_LEVEL_COMPATIBILITY_NOT_CONFIGURED = 40408
    SUBJECT_LEVEL_MODE_NOT_CONFIGURED = 40409
    NOT_FOUND = 40400
    BAD_REQUEST = 400
    INCOMPATIBLE_SCHEMA = 409
    INVALID_SCHEMA = 42201
    INVALID_VERSION = 42202
    INVALID_COMPATIBILITY_LEVEL = 42203
    INVALID_MODE = 42204
    OPERATION_NOT_PERMITTED = 42205
    REFERENCE_EXISTS = 42206
    INVALID_SUBJECT = 42208
    INVALID_RULESET = 42210
    CONTEXT_NOT_EMPTY = 42211
    INVALID_REQUEST = 422
    STORE_ERROR = 50001
    OPERATION_TIMEOUT = 50002
    FORWARDING_ERROR = 50003
    NO_LEADER = 50004

    @property
    def http_status(self) -> int:
        code = int(self)
        return code if code < 1000 else int(str(code)[:3])


class RegistryError(RefineryError):
    """An error with a Confluent error code; its message is what the client sees."""

    code: ErrorCode = ErrorCode.STORE_ERROR

    def __init__(self, message: str, code: ErrorCode | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class RegistryInputError(RegistryError, InvalidInputError):
    """The request can never succeed as sent: the message says what to fix."""


class NotFoundError(RegistryError):
    code = ErrorCode.NOT_FOUND


class SubjectNotFoundError(NotFoundError):
    code = ErrorCode.SUBJECT_NOT_FOUND

    def __init__(self, subject: str) -> None:
        super().__init__(f"Subject '{subject}' not found.")


class VersionNotFoundError(NotFoundError):
    code = ErrorCode.VERSION_NOT_FOUND

    def __init__(self, subject: str, version: int | str) -> None:
        super().__init__(f"Version {version} not found.")  # Confluent's text, which names no subject
        self.subject = subject


class SchemaNotFoundError(NotFoundError):
    code = ErrorCode.SCHEMA_NOT_FOUND

    def __init__(self, message: str = "Schema not found") -> None:
        super().__init__(message)


class IncompatibleSchemaError(RegistryError):
    """The new schema breaks the subject's compatibility level; `messages` says how."""

    code = ErrorCode.INCOMPATIBLE_SCHEMA

    def __init__(self, messages: list[str]) -> None:
        super().__init__(
            "Schema being registered is incompatible with an earlier schema for the same subject: "
            + "; ".join(messages)
        )
        self.messages = messages


class LeaderUnavailableError(RegistryError):
    """No registry process currently holds write leadership (or it cannot be reached)."""

    code = ErrorCode.NO_LEADER


class StoreError(RegistryError):
    """The Kafka topic behind the registry could not be written or read in time."""

    code = ErrorCode.STORE_ERROR


def invalid(code: ErrorCode, message: str) -> RegistryInputError:
    """A 4xx input error with a specific Confluent code (42201 invalid schema, 42202 version...)."""
    return RegistryInputError(message, code)
