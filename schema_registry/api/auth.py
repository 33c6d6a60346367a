"""Optional HTTP basic / bearer auth with read < write < admin roles (from RegistrySettings).

Reads need `read`, registering and deleting need `write`, changing config or mode needs `admin`. The
roles model itself (entries, roles, constant-time checks, 401/403 codes) is `common.auth`, shared with
the worker's route views; this module only maps registry requests onto roles.
"""

from __future__ import annotations

from starlette.responses import Response

from common.auth import AuthRefused, Role, RoleAuthenticator
from schema_registry.api.responses import is_write, refuse
from schema_registry.errors import ErrorCode

__all__ = ["OPEN_PATHS", "Authenticator", "Role", "required_role"]

OPEN_PATHS = ("/metrics", "/health", "/docs", "/openapi.json", "/docs/oauth2-redirect", "/redoc")


def required_role(method: str, path: str) -> Role:
    if not is_write(method, path):
        return Role.READ
    if path.startswith(("/config", "/mode")):
        return Role.ADMIN
    return Role.WRITE


class Authenticator(RoleAuthenticator):
    def check(self, method: str, path: str, authorization: str | None) -> Response | None:
        """None when the request may proceed, else the 401/403 response to send."""
        if not self.enabled or path.startswith(OPEN_PATHS):
            return None
        try:
            self.authorize(authorization, required_role(method, path))
        except AuthRefused as refused:
            code = ErrorCode(refused.error_code)
            headers = (
                {"WWW-Authenticate": 'Basic realm="schema-registry"'}
                if code == ErrorCode.UNAUTHORIZED
                else None
            )
            return refuse(code, refused.message, headers=headers)
        return None
