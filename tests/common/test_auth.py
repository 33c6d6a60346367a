"""The shared roles model (common.auth): entries, roles, basic and bearer identities, 401/403 refusals."""

from __future__ import annotations

import base64

import pytest
from pydantic import SecretStr

from common.auth import FORBIDDEN, UNAUTHORIZED, AuthRefused, Identity, Role, RoleAuthenticator, token_name
from common.errors import ConfigError
from schema_registry.errors import ErrorCode


def basic(name: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode()


def authenticator() -> RoleAuthenticator:
    users = [SecretStr("reader:pw:r:read"), SecretStr("ops:s3cret:write"), SecretStr("boss:b:ADMIN")]
    return RoleAuthenticator(users, [SecretStr("tok-123:write")])


def test_identities_from_basic_and_bearer() -> None:
    auth = authenticator()
    assert auth.enabled
    assert auth.identify(basic("reader", "pw:r")) == Identity("reader", Role.READ)  # colons in passwords
    assert auth.identify(basic("ops", "wrong")) is None
    assert auth.identify(basic("nobody", "pw")) is None
    assert auth.identify("Basic !!!not-base64") is None
    assert auth.identify("Bearer tok-123") == Identity(token_name("tok-123"), Role.WRITE)
    assert "tok-123" not in token_name("tok-123")
    assert auth.identify("Bearer tok-12") is None
    assert auth.identify(None) is None
    assert auth.user("boss", "b") == Identity("boss", Role.ADMIN)


def test_refusals_carry_confluent_codes() -> None:
    auth = authenticator()
    with pytest.raises(AuthRefused) as missing:
        auth.authorize(None, Role.READ)
    assert missing.value.http_status == 401 and missing.value.body()["error_code"] == UNAUTHORIZED
    with pytest.raises(AuthRefused) as low:
        auth.authorize(basic("ops", "s3cret"), Role.ADMIN)
    assert low.value.http_status == 403
    assert low.value.body() == {"error_code": FORBIDDEN, "message": "Forbidden: this needs the admin role"}
    assert auth.authorize(basic("ops", "s3cret"), Role.WRITE) == Identity("ops", Role.WRITE)
    assert auth.authorize(basic("boss", "b"), Role.WRITE) == Identity("boss", Role.ADMIN)
    # the registry's error codes are the same numbers
    assert (UNAUTHORIZED, FORBIDDEN) == (ErrorCode.UNAUTHORIZED, ErrorCode.FORBIDDEN)


def test_auth_off_lets_everyone_through() -> None:
    auth = RoleAuthenticator([], [])
    assert not auth.enabled and auth.authorize(None, Role.ADMIN) is None


@pytest.mark.parametrize(
    ("users", "tokens", "message"),
    [
        (["nocolon"], [], "name:password:role"),
        (["a:b:superuser"], [], "unknown role 'superuser'"),
        ([], ["justatoken"], "token:role"),
        ([], ["tok:owner"], "auth_tokens entry has unknown role"),
    ],
)
def test_bad_entries_are_config_errors(users: list[str], tokens: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RoleAuthenticator([SecretStr(u) for u in users], [SecretStr(t) for t in tokens])
