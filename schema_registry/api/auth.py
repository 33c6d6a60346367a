"""Optional HTTP basic / bearer auth with read < write < admin roles (from RegistrySettings).

Reads need `read`, registering and deleting need `write`, changing config or mode needs `admin`.
Secrets are compared in constant time and never logged.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Sequence
from enum import IntEnum

from pydantic import SecretStr
from starlette.responses import Response

from common.errors import ConfigError
from schema_registry.api.responses import is_write, refuse
from schema_registry.errors import ErrorCode

OPEN_PATHS = ("/metrics", "/docs", "/openapi.json", "/docs/oauth2-redirect", "/redoc")


class Role(IntEnum):
    READ = 1
    WRITE = 2
    ADMIN = 3


def _role(text: str, entry_kind: str) -> Role:
    try:
        return Role[text.strip().upper()]
    except KeyError:
        raise ConfigError(f"{entry_kind} entry has unknown role {text!r}: use read, write or admin") from None


def required_role(method: str, path: str) -> Role:
    if not is_write(method, path):
        return Role.READ
    if path.startswith(("/config", "/mode")):
        return Role.ADMIN
    return Role.WRITE


class Authenticator:
    def __init__(self, users: Sequence[SecretStr], tokens: Sequence[SecretStr]) -> None:
        self._users: dict[str, tuple[str, Role]] = {}
        for entry in users:
            name, sep, rest = entry.get_secret_value().partition(":")
            password, sep2, role = rest.rpartition(":")
            if not (sep and sep2 and name):
                raise ConfigError("auth_users entries look like 'name:password:role'")
            self._users[name] = (password, _role(role, "auth_users"))
        self._tokens: list[tuple[str, Role]] = []
        for entry in tokens:
            token, sep, role = entry.get_secret_value().rpartition(":")
            if not (sep and token):
                raise ConfigError("auth_tokens entries look like 'token:role'")
            self._tokens.append((token, _role(role, "auth_tokens")))

    @property
    def enabled(self) -> bool:
        return bool(self._users or self._tokens)

    def _role_of(self, authorization: str | None) -> Role | None:
        scheme, _, credentials = (authorization or "").partition(" ")
        if scheme.lower() == "basic":
            try:
                name, _, password = base64.b64decode(credentials.strip()).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return None
            known = self._users.get(name)
            if known and hmac.compare_digest(known[0].encode(), password.encode()):
                return known[1]
        elif scheme.lower() == "bearer":
            for token, role in self._tokens:
                if hmac.compare_digest(token.encode(), credentials.strip().encode()):
                    return role
        return None

    def check(self, method: str, path: str, authorization: str | None) -> Response | None:
        """None when the request may proceed, else the 401/403 response to send."""
        if not self.enabled or path.startswith(OPEN_PATHS):
            return None
        role = self._role_of(authorization)
        if role is None:
            return refuse(
                ErrorCode.UNAUTHORIZED,
                "Unauthorized: send valid basic or bearer credentials",
                headers={"WWW-Authenticate": 'Basic realm="schema-registry"'},
            )
        needed = required_role(method, path)
        if role < needed:
            return refuse(ErrorCode.FORBIDDEN, f"Forbidden: this needs the {needed.name.lower()} role")
        return None
