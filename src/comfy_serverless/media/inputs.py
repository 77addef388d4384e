"""Turn a job's ``images[].image`` into bytes: base64, a ``data:`` URI, or an http(s) URL.

URLs are fetched with a guard against server-side request forgery: every address a host name resolves
to must be public, literal IPs are checked the same way, redirects are followed by hand so each hop is
checked, and the connection goes to the checked address (the resolver itself refuses private ones, so a
second DNS answer cannot swap it)."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import socket
from urllib.parse import unquote_to_bytes, urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from ..errors import InvalidInputError

_WHITESPACE = re.compile(rb"\s+")
_MAX_REDIRECTS = 5


class InputRefused(Exception):
    """A URL input points somewhere the worker must not go."""


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


class PublicOnlyResolver(AbstractResolver):
    """DNS resolver that refuses host names resolving to loopback, private, link-local or reserved
    addresses (cloud metadata at 169.254.169.254 included)."""

    def __init__(self) -> None:
        self._inner = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            if not _is_public(result["host"]):
                raise InputRefused(f"{host} resolves to {result['host']}, which is not a public address")
        return results

    async def close(self) -> None:
        await self._inner.close()


def _size_error(field: str, size: int, limit: int) -> InvalidInputError:
    return InvalidInputError(
        f"{field} is {size / 1e6:.1f} MB, more than the {limit / 1e6:.1f} MB allowed (MAX_INPUT_BYTES)",
        details={"field": field, "bytes": size, "limit": limit},
    )


def decode_base64(text: str, field: str, limit: int) -> bytes:
    """Decode base64 (standard or URL-safe, padding optional, whitespace ignored)."""
    raw = _WHITESPACE.sub(b"", text.encode("ascii", "replace"))
    if len(raw) * 3 // 4 > limit:
        raise _size_error(field, len(raw) * 3 // 4, limit)
    raw += b"=" * (-len(raw) % 4)
    altchars = b"-_" if (b"-" in raw or b"_" in raw) else None
    try:
        data = base64.b64decode(raw, altchars=altchars, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInputError(
            f"{field} is not valid base64, a data: URI or an http(s) URL ({exc})",
            details={"field": field},
        ) from None
    if not data:
        raise InvalidInputError(f"{field} decodes to an empty file", details={"field": field})
    return data


def decode_data_uri(text: str, field: str, limit: int) -> bytes:
    """Decode ``data:[<mime>][;base64],<payload>``."""
    header, sep, payload = text.partition(",")
    if not sep:
        raise InvalidInputError(
            f"{field} is a data: URI without a comma before its data", details={"field": field}
        )
    if header.endswith(";base64"):
        return decode_base64(payload, field, limit)
    data = unquote_to_bytes(payload)
    if len(data) > limit:
        raise _size_error(field, len(data), limit)
    return data


class InputFetcher:
    """Fetches URL inputs through one session whose resolver refuses non-public addresses."""

    def __init__(self, *, limit: int, timeout: float = 60.0, allow_private: bool = False):
        self.limit = limit
        self.allow_private = allow_private
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=10)
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            resolver: AbstractResolver = DefaultResolver() if self.allow_private else PublicOnlyResolver()
            self._session = aiohttp.ClientSession(
                timeout=self._timeout, connector=aiohttp.TCPConnector(resolver=resolver, limit=8)
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _check_url(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise InputRefused(f"only http and https URLs are fetched, not {parts.scheme}:")
        if not parts.hostname:
            raise InputRefused("the URL has no host")
        if parts.username or parts.password:
            raise InputRefused("URLs with credentials are not fetched")
        if self.allow_private:
            return
        try:
            literal = ipaddress.ip_address(parts.hostname)
        except ValueError:
            if parts.hostname.lower() in ("localhost", "localhost.localdomain") or parts.hostname.endswith(
                ".localhost"
            ):
                raise InputRefused(f"{parts.hostname} is not a public host") from None
            return
        if not _is_public(str(literal)):
            raise InputRefused(f"{parts.hostname} is not a public address")

    async def fetch(self, url: str, field: str) -> bytes:
        """Download a URL input; errors name the field and never the query string (it may hold a token)."""
        shown = urlsplit(url)._replace(query="", fragment="").geturl()
        try:
            for _ in range(_MAX_REDIRECTS + 1):
                self._check_url(url)
                async with self.session.get(url, allow_redirects=False) as response:
                    if response.status in (301, 302, 303, 307, 308) and "Location" in response.headers:
                        url = urljoin(url, response.headers["Location"])
                        continue
                    if response.status != 200:
                        raise InvalidInputError(
                            f"{field}: downloading {shown} answered HTTP {response.status}",
                            details={"field": field, "status": response.status},
                        )
                    if response.content_length is not None and response.content_length > self.limit:
                        raise _size_error(field, response.content_length, self.limit)
                    chunks: list[bytes] = []
                    size = 0
                    async for chunk in response.content.iter_chunked(1 << 16):
                        size += len(chunk)
                        if size > self.limit:
                            raise _size_error(field, size, self.limit)
                        chunks.append(chunk)
                    if not size:
                        raise InvalidInputError(f"{field}: {shown} is empty", details={"field": field})
                    return b"".join(chunks)
            raise InvalidInputError(
                f"{field}: {shown} redirects more than {_MAX_REDIRECTS} times", details={"field": field}
            )
        except InputRefused as exc:
            raise InvalidInputError(
                f"{field}: refusing to fetch {shown}: {exc}", details={"field": field, "reason": "ssrf_guard"}
            ) from None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            cause = exc.__cause__ if isinstance(exc.__cause__, InputRefused) else None
            if cause is not None:
                raise InvalidInputError(
                    f"{field}: refusing to fetch {shown}: {cause}",
                    details={"field": field, "reason": "ssrf_guard"},
                ) from None
            reason = str(exc) or type(exc).__name__
            raise InvalidInputError(
                f"{field}: could not download {shown}: {reason}", details={"field": field}
            ) from None


async def load_input(value: str, field: str, fetcher: InputFetcher) -> bytes:
    """The bytes of one input, whatever form it came in."""
    head = value[:16].lower()
    if head.startswith("data:"):
        return decode_data_uri(value, field, fetcher.limit)
    if head.startswith(("http://", "https://")):
        return await fetcher.fetch(value, field)
    if "://" in value[:32]:
        scheme = value.split("://", 1)[0]
        raise InvalidInputError(
            f"{field}: {scheme}:// URLs are not supported; use base64, a data: URI or an http(s) URL",
            details={"field": field},
        )
    return decode_base64(value, field, fetcher.limit)
