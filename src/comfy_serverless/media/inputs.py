"""Turn a job's input values into bytes: base64, a ``data:`` URI, or an http(s) URL.

URLs are fetched with a guard against server-side request forgery: every address a host name resolves
to must be public, literal IPs are checked the same way (an IPv6 address that embeds an IPv4 one,
NAT64, 6to4, Teredo, IPv4-mapped or -compatible, is judged by the embedded address too), redirects are
followed by hand so each hop is checked, and the connection goes to the checked address (the resolver
itself refuses private ones, so a second DNS answer cannot swap it). Operators who keep inputs on a
private network open named hosts, addresses or networks with an allow-list."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Iterable
from urllib.parse import unquote_to_bytes, urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from ..errors import InvalidInputError, bytes_text, seconds_text

_WHITESPACE = re.compile(rb"\s+")
_MAX_REDIRECTS = 5
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
#: Bytes gathered from the network before one write: few thread hops, bounded memory.
_WRITE_BUFFER = 1 << 20

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# IPv6 prefixes whose addresses carry an IPv4 address (RFC 4291, 6052, 8215, 3056, 4380).
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_IPV4_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")  # SIIT, RFC 2765
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
# Not globally reachable (IANA special-purpose registry), whatever this Python's ipaddress knows: older
# releases call these global.
_NOT_GLOBAL_V6 = (
    _NAT64_LOCAL,
    ipaddress.IPv6Network("3fff::/20"),  # documentation, RFC 9637
    ipaddress.IPv6Network("5f00::/16"),  # SRv6 SIDs, RFC 9602
)
_LOCAL_NAMES = ("localhost", "localhost.localdomain")


class InputRefused(Exception):
    """A URL input points somewhere the worker must not go."""


def embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries: IPv4-mapped and -translated, IPv4-compatible, NAT64
    (``64:ff9b::/96`` and the local-use ``64:ff9b:1::/48``), 6to4, and Teredo's server and client."""
    found: list[ipaddress.IPv4Address] = []
    value = int(ip)
    low32 = ipaddress.IPv4Address(value & 0xFFFFFFFF)
    if ip.ipv4_mapped is not None:
        found.append(ip.ipv4_mapped)
    if ip in _IPV4_TRANSLATED or ip in _NAT64:
        found.append(low32)
    if ip in _IPV4_COMPATIBLE and value > 1:  # not :: or ::1
        found.append(low32)
    if ip in _NAT64_LOCAL:
        # RFC 6052 layout for a /48 prefix: IPv4 bits 0-15 in bits 48-63, bits 64-71 zero ("u"),
        # IPv4 bits 16-31 in bits 72-87.
        found.append(ipaddress.IPv4Address((((value >> 64) & 0xFFFF) << 16) | ((value >> 40) & 0xFFFF)))
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found.extend(ip.teredo)  # (server, client), the client already un-obfuscated
    return found


def is_public_address(address: str | IPAddress) -> bool:
    """Whether an address is one a URL input may reach: global and not multicast, and so is every IPv4
    address an IPv6 one embeds."""
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if ip.is_unspecified or not ip.is_global or ip.is_multicast:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        if any(ip in network for network in _NOT_GLOBAL_V6):
            return False
        return all(v4.is_global and not v4.is_multicast for v4 in embedded_ipv4(ip))
    return True


def _normal_host(host: str) -> str:
    host = host.strip().lower().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host.isascii():
        with contextlib.suppress(UnicodeError):
            host = host.encode("idna").decode("ascii")
    return host


_HOST_NAME = re.compile(r"[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*")


class AllowedHosts:
    """Private hosts URL inputs may reach anyway: host names (exact), IP addresses and CIDR networks.

    Given as a comma-separated string or as entries; an entry that is none of these is a ValueError."""

    def __init__(self, entries: str | Iterable[str] = ()) -> None:
        self.names: frozenset[str] = frozenset()
        self.networks: tuple[IPNetwork, ...] = ()
        names: set[str] = set()
        networks: list[IPNetwork] = []
        for raw in entries.split(",") if isinstance(entries, str) else entries:
            entry = _normal_host(raw)
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
                continue
            except ValueError:
                pass
            if not _HOST_NAME.fullmatch(entry):
                raise ValueError(
                    f"{raw.strip()!r} in the allowed input hosts (INPUT_URL_ALLOWED_HOSTS) is not a host "
                    "name, an IP address or a CIDR network such as 10.0.0.0/8"
                )
            names.add(entry)
        self.names = frozenset(names)
        self.networks = tuple(networks)

    def __bool__(self) -> bool:
        return bool(self.names or self.networks)

    def has_name(self, host: str) -> bool:
        return _normal_host(host) in self.names

    def has_address(self, address: str | IPAddress) -> bool:
        ip = ipaddress.ip_address(address) if isinstance(address, str) else address
        candidates: list[IPAddress] = [ip]
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            candidates.append(ip.ipv4_mapped)
        return any(
            candidate in network
            for candidate in candidates
            for network in self.networks
            if network.version == candidate.version
        )

    def __repr__(self) -> str:
        entries = sorted(self.names) + [str(network) for network in self.networks]
        return f"AllowedHosts({', '.join(entries)!r})"


class PublicOnlyResolver(AbstractResolver):
    """DNS resolver that refuses host names resolving to loopback, private, link-local, reserved or
    otherwise non-public addresses (cloud metadata at 169.254.169.254 included, in any IPv6 disguise),
    except the hosts, addresses and networks an allow-list opens.

    ``inner`` does the resolving (aiohttp's default resolver unless given)."""

    def __init__(self, inner: AbstractResolver | None = None, *, allowed: AllowedHosts | None = None) -> None:
        self._owns_inner = inner is None
        self._inner = inner if inner is not None else DefaultResolver()
        self._allowed = allowed if allowed is not None else AllowedHosts()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if self._allowed.has_name(host):
            return results
        for result in results:
            address = result["host"]
            if not is_public_address(address) and not self._allowed.has_address(address):
                raise InputRefused(f"{host} resolves to {address}, which is not a public address")
        return results

    async def close(self) -> None:
        if self._owns_inner:
            await self._inner.close()


def size_error(field: str, size: int, limit: int) -> InvalidInputError:
    """The error for an input over the size cap."""
    return InvalidInputError(
        f"{field} is {bytes_text(size)}, more than the {bytes_text(limit)} allowed (MAX_INPUT_BYTES)",
        details={"field": field, "bytes": size, "limit": limit},
    )


def _empty_error(field: str) -> InvalidInputError:
    return InvalidInputError(f"{field} decodes to an empty file", details={"field": field})


def decode_base64(text: str, field: str, limit: int) -> bytes:
    """Decode base64 (standard or URL-safe, padding optional, whitespace ignored)."""
    raw = _WHITESPACE.sub(b"", text.encode("ascii", "replace"))
    if len(raw) * 3 // 4 > limit:
        raise size_error(field, len(raw) * 3 // 4, limit)
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
        raise _empty_error(field)
    return data


def decode_data_uri(text: str, field: str, limit: int) -> bytes:
    """Decode ``data:[<mime>][;base64],<payload>``."""
    header, sep, payload = text.partition(",")
    if not sep:
        raise InvalidInputError(
            f"{field} is a data: URI without a comma before its data", details={"field": field}
        )
    if header.lower().endswith(";base64"):
        return decode_base64(payload, field, limit)
    data = unquote_to_bytes(payload)
    if len(data) > limit:
        raise size_error(field, len(data), limit)
    if not data:
        raise _empty_error(field)
    return data


def shown_url(url: str) -> str:
    """A URL as errors show it: without its query string and fragment (they may hold a token)."""
    try:
        return urlsplit(url)._replace(query="", fragment="").geturl()
    except ValueError:
        return "the URL"


class InputFetcher:
    """Fetches URL inputs through one session whose resolver refuses non-public addresses.

    ``limit`` caps each download (bytes), ``timeout`` each download as a whole (seconds, redirects
    included). ``allow_private`` lifts the guard; ``allowed_hosts`` opens only the host names, addresses
    and CIDR networks it lists (a comma-separated string or entries). ``resolver`` replaces aiohttp's
    default DNS resolver under the guard."""

    def __init__(
        self,
        *,
        limit: int,
        timeout: float = 60.0,
        allow_private: bool = False,
        allowed_hosts: str | Iterable[str] | AllowedHosts = (),
        resolver: AbstractResolver | None = None,
    ):
        self.limit = limit
        self.timeout = timeout
        self.allow_private = allow_private
        self.allowed = (
            allowed_hosts if isinstance(allowed_hosts, AllowedHosts) else AllowedHosts(allowed_hosts)
        )
        self._inner_resolver = resolver
        self._client_timeout = aiohttp.ClientTimeout(total=None, sock_connect=min(10.0, timeout))
        self._session: aiohttp.ClientSession | None = None
        self._resolver: AbstractResolver | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            if self.allow_private:
                self._resolver = self._inner_resolver or DefaultResolver()
            else:
                self._resolver = PublicOnlyResolver(self._inner_resolver, allowed=self.allowed)
            self._session = aiohttp.ClientSession(
                timeout=self._client_timeout,
                connector=aiohttp.TCPConnector(resolver=self._resolver, limit=8),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._resolver is not None and self._resolver is not self._inner_resolver:
            await self._resolver.close()
        self._resolver = None

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
        host = _normal_host(parts.hostname)
        if self.allowed.has_name(host):
            return
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            if host in _LOCAL_NAMES or host.endswith(".localhost"):
                raise InputRefused(f"{parts.hostname} is not a public host") from None
            return  # a host name: the resolver checks every address it resolves to
        if not is_public_address(literal) and not self.allowed.has_address(literal):
            raise InputRefused(f"{parts.hostname} is not a public address")

    async def download(self, url: str, field: str, write: Callable[[bytes], Awaitable[None]]) -> int:
        """Stream a URL input to ``write`` in pieces of up to about 1 MiB; returns its size.

        Errors are InvalidInputError naming the field and the URL without its query string (it may hold
        a token): refused by the guard, an HTTP status other than 200, more than ``limit`` bytes, empty,
        too many redirects, unreachable, or longer than ``timeout`` seconds. Whatever ``write`` raises
        goes through unchanged."""
        shown = shown_url(url)
        try:
            async with asyncio.timeout(self.timeout):
                return await self._download(url, field, shown, write)
        except TimeoutError:
            raise InvalidInputError(
                f"{field}: downloading {shown} did not finish within {seconds_text(self.timeout)} s",
                details={"field": field, "reason": "timeout"},
            ) from None

    async def _download(
        self, url: str, field: str, shown: str, write: Callable[[bytes], Awaitable[None]]
    ) -> int:
        hop = url
        for _ in range(_MAX_REDIRECTS + 1):
            where = shown if hop == url else f"{shown} (redirected to {shown_url(hop)})"
            try:
                self._check_url(hop)
                async with self.session.get(hop, allow_redirects=False) as response:
                    if response.status in _REDIRECTS and "Location" in response.headers:
                        hop = urljoin(hop, response.headers["Location"])
                        continue
                    if response.status != 200:
                        raise InvalidInputError(
                            f"{field}: downloading {where} answered HTTP {response.status}",
                            details={"field": field, "status": response.status},
                        )
                    if response.content_length is not None and response.content_length > self.limit:
                        raise size_error(field, response.content_length, self.limit)
                    size = 0
                    pending: list[bytes] = []
                    buffered = 0
                    async for chunk in response.content.iter_chunked(1 << 16):
                        size += len(chunk)
                        if size > self.limit:
                            raise size_error(field, size, self.limit)
                        pending.append(chunk)
                        buffered += len(chunk)
                        if buffered >= _WRITE_BUFFER:
                            await write(b"".join(pending))
                            pending, buffered = [], 0
                    if not size:
                        raise InvalidInputError(f"{field}: {where} is empty", details={"field": field})
                    if pending:
                        await write(b"".join(pending))
                    return size
            except InputRefused as exc:
                raise self._refused(field, where, exc) from None
            except aiohttp.ConnectionTimeoutError:
                raise InvalidInputError(
                    f"{field}: could not connect to download {where} within "
                    f"{seconds_text(self._client_timeout.sock_connect or self.timeout)} s",
                    details={"field": field, "reason": "timeout"},
                ) from None
            except (aiohttp.ClientError, OSError) as exc:
                if isinstance(exc.__cause__, InputRefused):
                    raise self._refused(field, where, exc.__cause__) from None
                reason = str(exc) or type(exc).__name__
                raise InvalidInputError(
                    f"{field}: could not download {where}: {reason}", details={"field": field}
                ) from None
        raise InvalidInputError(
            f"{field}: {shown} redirects more than {_MAX_REDIRECTS} times",
            details={"field": field, "reason": "too_many_redirects"},
        )

    async def check_endpoint(self, url: str, field: str) -> None:
        """Hold an address the worker will connect to by other means (a job's S3 endpoint) to the rules
        of URL inputs: public, allow-listed, or the guard lifted. Host names are resolved once here."""
        shown = shown_url(url)
        try:
            self._check_url(url)
            parts = urlsplit(url)
            host = _normal_host(parts.hostname or "")
            if self.allow_private or self.allowed.has_name(host):
                return
            with contextlib.suppress(ValueError):
                ipaddress.ip_address(host)
                return  # a literal address, judged by _check_url
            resolver = PublicOnlyResolver(self._inner_resolver, allowed=self.allowed)
            try:
                await resolver.resolve(host, parts.port or 443, socket.AF_UNSPEC)
            finally:
                await resolver.close()
        except InputRefused as exc:
            raise self._refused(field, shown, exc, doing="connect to") from None
        except OSError as exc:
            if isinstance(exc.__cause__, InputRefused):
                raise self._refused(field, shown, exc.__cause__, doing="connect to") from None
            raise InvalidInputError(
                f"{field}: cannot resolve the host of {shown}: {exc.strerror or exc}",
                details={"field": field},
            ) from None

    @staticmethod
    def _refused(field: str, where: str, exc: InputRefused, *, doing: str = "fetch") -> InvalidInputError:
        return InvalidInputError(
            f"{field}: refusing to {doing} {where}: {exc}", details={"field": field, "reason": "ssrf_guard"}
        )
