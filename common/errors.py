"""One error tree for the whole project. Every error we raise on purpose derives from RefineryError,
and those caused by bad input also derive from ValueError so generic callers can catch them."""

from __future__ import annotations


class RefineryError(Exception):
    """Root of every error Refinery raises on purpose."""


class InvalidInputError(RefineryError, ValueError):
    """Input that can never become valid by retrying: fix the data or the call."""


class TopicNameError(InvalidInputError):
    """A topic name or one of its components is not legal. `part` names the offending component."""

    def __init__(self, message: str, *, part: str | None = None) -> None:
        super().__init__(message)
        self.part = part


class EnvelopeError(InvalidInputError):
    """Bytes that are not a valid Refinery envelope, or an envelope with invalid metadata."""


class HeaderError(InvalidInputError):
    """Kafka record headers that are missing, duplicated or malformed. `header` names the culprit."""

    def __init__(self, message: str, *, header: str | None = None) -> None:
        super().__init__(message)
        self.header = header


class ConfigError(InvalidInputError):
    """A configuration value that cannot be used."""


class RegistryAccessError(RefineryError):
    """The schema registry refused our credentials (401/403). Never a reason to let data through."""
