"""One roles model for every service with optional HTTP auth: the schema registry and the worker's views.

Entries come from settings as secrets: users `"name:password:role"` (HTTP basic; the password may contain
colons) and tokens `"token:role"` (HTTP bearer). Roles are ordered read < write < admin; a caller may do
what its role or any lower one allows. Auth is on when either list is non-empty. Secrets are compared in
constant time and never logged; a token is named by a short hash (`token:1a2b3c4d`), never by itself.

Refusals carry Confluent's codes so every service answers alike: no or wrong credentials ->
401 `{"error_code": 40101, ...}`, a role too low -> 403 `{"error_code": 40301, ...}`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

from pydantic import SecretStr

from common.errors import ConfigError, RefineryError

UNAUTHORIZED = 40101
FORBIDDEN = 40301
UNAUTHORIZED_MESSAGE = "Unauthorized: send valid basic or bearer credentials"


class Role(IntEnum):
    READ = 1
    WRITE = 2
    ADMIN = 3

    @property
    def label(self) -> str:
        return self.name.lower()


def parse_role(text: str, entry_kind: str = "role") -> Role:
    try:
        return Role[text.strip().upper()]
    except KeyError:
        raise ConfigError(f"{entry_kind} entry has unknown role {text!r}: use read, write or admin") from None


@dataclass(frozen=True)
class Identity:
    """Who a request (or an operator) proved to be: a user name or `token:<hash prefix>`, and a role."""

    name: str
    role: Role


class AuthRefused(RefineryError):
    """Credentials missing or wrong (401/40101) or a role too low (403/40301); the message says which."""

    def __init__(self, error_code: int, message: str) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.message = message

    @property
    def http_status(self) -> int:
        return self.error_code // 100

    def body(self) -> dict[str, object]:
        return {"error_code": self.error_code, "message": self.message}


def forbidden(needed: Role) -> AuthRefused:
    return AuthRefused(FORBIDDEN, f"Forbidden: this needs the {needed.label} role")


def token_name(token: str) -> str:
    """How a bearer token appears in logs and history: a hash prefix, never the token."""
    return "token:" + hashlib.sha256(token.encode()).hexdigest()[:8]


class RoleAuthenticator:
    """Users and tokens with roles, parsed once from settings; knows nothing about HTTP frameworks."""

    def __init__(self, users: Sequence[SecretStr], tokens: Sequence[SecretStr]) -> None:
        self._users: dict[str, tuple[str, Role]] = {}
        for entry in users:
            name, sep, rest = entry.get_secret_value().partition(":")
            password, sep2, role = rest.rpartition(":")
            if not (sep and sep2 and name):
                raise ConfigError("auth_users entries look like 'name:password:role'")
            self._users[name] = (password, parse_role(role, "auth_users"))
        self._tokens: list[tuple[str, Role]] = []
        for entry in tokens:
            token, sep, role = entry.get_secret_value().rpartition(":")
            if not (sep and token):
                raise ConfigError("auth_tokens entries look like 'token:role'")
            self._tokens.append((token, parse_role(role, "auth_tokens")))

    @property
    def enabled(self) -> bool:
        return bool(self._users or self._tokens)

    def user(self, name: str, password: str) -> Identity | None:
        known = self._users.get(name)
        if known and hmac.compare_digest(known[0].encode(), password.encode()):
            return Identity(name, known[1])
        return None

    def bearer(self, credentials: str) -> Identity | None:
        found: Identity | None = None
        for token, role in self._tokens:  # no early exit: the time taken says nothing about the match
            if hmac.compare_digest(token.encode(), credentials.encode()) and found is None:
                found = Identity(token_name(token), role)
        return found

    def identify(self, authorization: str | None) -> Identity | None:
        """The identity an HTTP `Authorization` header proves, or None."""
        scheme, _, credentials = (authorization or "").partition(" ")
        if scheme.lower() == "basic":
            try:
                name, _, password = base64.b64decode(credentials.strip()).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return None
            return self.user(name, password)
        if scheme.lower() == "bearer":
            return self.bearer(credentials.strip())
        return None

    def require(self, identity: Identity | None, needed: Role) -> Identity:
        """`identity` when its role suffices; else AuthRefused (401 for no identity, 403 for a low role)."""
        if identity is None:
            raise AuthRefused(UNAUTHORIZED, UNAUTHORIZED_MESSAGE)
        if identity.role < needed:
            raise forbidden(needed)
        return identity

    def authorize(self, authorization: str | None, needed: Role) -> Identity | None:
        """None when auth is off, else the caller's identity if its role suffices (else AuthRefused)."""
        if not self.enabled:
            return None
        return self.require(self.identify(authorization), needed)
