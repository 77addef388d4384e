"""Who may talk to the HTTP service: a bearer token compared in constant time, and where it may listen
without one (loopback only, unless HTTP_ALLOW_PUBLIC says otherwise)."""

from __future__ import annotations

import hmac
import ipaddress
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..settings import Settings


class ServiceError(Exception):
    """An HTTP error answered as ``{"error": message}``."""

    def __init__(self, status_code: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.headers = headers


class BindRefused(Exception):
    """The service would listen on a public address with nobody checking who calls it."""


def configured_token(settings: Settings) -> str | None:
    """HTTP_TOKEN, None when unset or empty."""
    token = settings.http_token.get_secret_value() if settings.http_token is not None else ""
    return token or None


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address, or ``localhost``) is reachable from this machine only."""
    host = host.strip().strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, settings: Settings, *, where: str | None = None) -> None:
    """Refuse a non-loopback address without HTTP_TOKEN, unless HTTP_ALLOW_PUBLIC is set. ``where``
    names the place in the error instead of ``host``."""
    if is_loopback(host) or configured_token(settings) is not None or settings.http_allow_public:
        return
    raise BindRefused(
        f"refusing to serve {where or f'on {host}'} without a token: anyone who can reach it could run "
        "jobs. Set "
        "HTTP_TOKEN (callers then send 'Authorization: Bearer <token>'), or HTTP_ALLOW_PUBLIC=true when "
        "a proxy of your own checks callers, or listen on 127.0.0.1"
    )


_bearer = HTTPBearer(
    auto_error=False,
    description="HTTP_TOKEN, when the service has one: `Authorization: Bearer <token>`.",
)


class BearerAuth:
    """FastAPI dependency: the request must carry HTTP_TOKEN as its bearer token (when one is set)."""

    def __init__(self, settings: Settings):
        token = configured_token(settings)
        self._token = token.encode("utf-8") if token is not None else None

    @property
    def enabled(self) -> bool:
        return self._token is not None

    async def __call__(
        self, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
    ) -> None:
        if self._token is None:
            return
        if credentials is None:
            raise ServiceError(
                401,
                "this service needs a bearer token: send 'Authorization: Bearer <HTTP_TOKEN>'",
                {"WWW-Authenticate": "Bearer"},
            )
        if not hmac.compare_digest(credentials.credentials.encode("utf-8"), self._token):
            raise ServiceError(
                401,
                "the bearer token is not this service's HTTP_TOKEN",
                {"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
