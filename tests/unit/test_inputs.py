"""Input decoding and the server-side request forgery guard."""

from __future__ import annotations

import base64
import ipaddress
import re
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import quote

import pytest

from comfy_serverless.errors import InvalidInputError
from comfy_serverless.media.inputs import (
    AllowedHosts,
    InputFetcher,
    InputRefused,
    PublicOnlyResolver,
    decode_base64,
    decode_data_uri,
    embedded_ipv4,
    is_public_address,
)
from tests.support.http_servers import FakeResolver, FileServer, file_server, image_bytes

LIMIT = 1000


async def fetch(fetcher: InputFetcher, url: str, field: str) -> bytes:
    """A download collected in memory."""
    chunks: list[bytes] = []

    async def keep(chunk: bytes) -> None:
        chunks.append(chunk)

    await fetcher.download(url, field, keep)
    return b"".join(chunks)


def test_base64_variants_decode() -> None:
    data = bytes(range(200))
    plain = base64.b64encode(data).decode()
    assert decode_base64(plain, "f", LIMIT) == data
    assert decode_base64(plain.rstrip("="), "f", LIMIT) == data
    assert decode_base64(base64.urlsafe_b64encode(data).decode(), "f", LIMIT) == data
    assert decode_base64("\n".join(plain[i : i + 60] for i in range(0, len(plain), 60)), "f", LIMIT) == data


def test_oversized_input_is_refused_before_decoding() -> None:
    with pytest.raises(
        InvalidInputError, match=r"images\[0\]\.image is 3\.0 kB, more than the 1\.0 kB allowed"
    ):
        decode_base64("A" * 4000, "images[0].image", LIMIT)


def test_data_uri_plain_and_base64() -> None:
    assert decode_data_uri("data:text/plain,hello%20there", "f", LIMIT) == b"hello there"
    assert decode_data_uri("data:image/png;BASE64," + base64.b64encode(b"png").decode(), "f", LIMIT) == b"png"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/x",
        "http://10.0.0.5/x",
        "http://192.168.1.1/x",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/x",
        "http://[::ffff:127.0.0.1]/x",
        "http://localhost/x",
        "http://0.0.0.0/x",
        "http://user:pass@example.com/x",
    ],
)
async def test_private_and_credentialed_urls_are_refused(url: str) -> None:
    fetcher = InputFetcher(limit=LIMIT)
    with pytest.raises(InvalidInputError, match=r"images\[0\]\.image: refusing to fetch"):
        await fetch(fetcher, url, "images[0].image")
    await fetcher.close()


async def test_resolver_refuses_names_that_resolve_to_private_addresses() -> None:
    resolver = PublicOnlyResolver()
    with pytest.raises(InputRefused, match="not a public address"):
        await resolver.resolve("localhost", 80)
    await resolver.close()


# --- IPv6 forms that carry a private IPv4 address --------------------------------------------------

# (address, what it hides)
EMBEDDED_PRIVATE = [
    ("64:ff9b::a9fe:a9fe", "NAT64 of 169.254.169.254"),
    ("64:ff9b::7f00:1", "NAT64 of 127.0.0.1"),
    ("64:ff9b:1:7f00:0:100::", "local-use NAT64 (RFC 6052 /48) of 127.0.0.1"),
    ("2002:7f00:1::", "6to4 of 127.0.0.1"),
    ("2002:a9fe:a9fe::1", "6to4 of 169.254.169.254"),
    ("::127.0.0.1", "IPv4-compatible 127.0.0.1"),
    ("::a00:1", "IPv4-compatible 10.0.0.1"),
    ("::ffff:a9fe:a9fe", "IPv4-mapped 169.254.169.254"),
    ("::ffff:0:7f00:1", "IPv4-translated 127.0.0.1"),
    ("2001:0:a00:1::f7f7:f7f7", "Teredo, server 10.0.0.1, client 8.8.8.8"),
    ("2001:0:808:808::80ff:fffe", "Teredo, server 8.8.8.8, client 127.0.0.1"),
    ("::", "the unspecified address"),
    ("ff02::1", "IPv6 multicast"),
]


@pytest.mark.parametrize(("address", "hides"), EMBEDDED_PRIVATE)
def test_ipv6_forms_of_private_ipv4_addresses_are_not_public(address: str, hides: str) -> None:
    assert not is_public_address(address), hides


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "2606:4700:4700::1111", "64:ff9b::808:808", "::ffff:8.8.8.8", "192.0.0.9"]
)
def test_public_addresses_stay_public(address: str) -> None:
    assert is_public_address(address)


@pytest.mark.parametrize("address", ["0.0.0.0", "100.64.0.1", "224.0.0.1", "255.255.255.255", "::1"])
def test_other_special_addresses_are_not_public(address: str) -> None:
    assert not is_public_address(address)


def test_embedded_ipv4_decodes_each_layout() -> None:
    def decoded(address: str) -> list[str]:
        return [str(ip) for ip in embedded_ipv4(ipaddress.IPv6Address(address))]

    assert decoded("64:ff9b::a9fe:a9fe") == ["169.254.169.254"]
    assert decoded("64:ff9b:1:c000:2:2100::") == ["192.0.2.33"]  # RFC 6052 section 2.4's /48 example
    assert decoded("2002:7f00:1::") == ["127.0.0.1"]
    assert decoded("::127.0.0.1") == ["127.0.0.1"]
    assert decoded("::ffff:10.1.2.3") == ["10.1.2.3"]
    assert decoded("2001:0:4136:e378:8000:63bf:3fff:fdd2") == ["65.54.227.120", "192.0.2.45"]
    assert decoded("::1") == decoded("::") == decoded("2606:4700::1") == []


@pytest.mark.parametrize(("address", "hides"), EMBEDDED_PRIVATE)
async def test_url_literals_hiding_private_addresses_are_refused(address: str, hides: str) -> None:
    fetcher = InputFetcher(limit=LIMIT)
    with pytest.raises(InvalidInputError) as caught:
        await fetch(fetcher, f"http://[{address}]/x?token=secret", "inputs[0].url")
    await fetcher.close()
    assert caught.value.message == (
        f"inputs[0].url: refusing to fetch http://[{address}]/x: {address} is not a public address"
    ), hides


@pytest.mark.parametrize(("address", "hides"), EMBEDDED_PRIVATE)
async def test_host_names_resolving_to_hidden_private_addresses_are_refused(address: str, hides: str) -> None:
    resolver = FakeResolver({"files.example.com": [address]})
    fetcher = InputFetcher(limit=LIMIT, resolver=resolver)
    with pytest.raises(InvalidInputError) as caught:
        await fetch(fetcher, "http://files.example.com/x?token=secret", "inputs[0].url")
    await fetcher.close()
    assert resolver.asked == ["files.example.com"]
    assert caught.value.message == (
        "inputs[0].url: refusing to fetch http://files.example.com/x: files.example.com resolves to "
        f"{address}, which is not a public address"
    ), hides


async def test_one_private_address_among_public_ones_refuses_the_name() -> None:
    resolver = PublicOnlyResolver(FakeResolver({"mixed.example.com": ["8.8.8.8", "2002:7f00:1::"]}))
    with pytest.raises(InputRefused, match="resolves to 2002:7f00:1::"):
        await resolver.resolve("mixed.example.com", 80)
    await resolver.close()


# --- Redirects and the allow-list, with the guard on ------------------------------------------------


@pytest.fixture
async def make_fetcher() -> AsyncIterator[Callable[..., InputFetcher]]:
    fetchers: list[InputFetcher] = []

    def make(**options: Any) -> InputFetcher:
        fetchers.append(InputFetcher(limit=LIMIT, **options))
        return fetchers[-1]

    yield make
    for fetcher in fetchers:
        await fetcher.close()


@pytest.fixture
async def public() -> AsyncIterator[FileServer]:
    """A server that counts as public: 127.0.0.2, allow-listed in these tests."""
    async with file_server("127.0.0.2", {"img.png": image_bytes()}) as server:
        yield server


@pytest.fixture
async def private() -> AsyncIterator[FileServer]:
    async with file_server("127.0.0.1", {"img.png": image_bytes()}) as server:
        yield server


async def test_allowed_address_is_fetched_and_others_stay_refused(
    make_fetcher: Callable[..., InputFetcher], public: FileServer, private: FileServer
) -> None:
    fetcher = make_fetcher(allowed_hosts="127.0.0.2")
    assert await fetch(fetcher, public.url("/file/img.png"), "inputs[0].url") == image_bytes()
    with pytest.raises(
        InvalidInputError, match=r"^inputs\[1\]\.url: refusing to fetch .*not a public address"
    ):
        await fetch(fetcher, private.url("/file/img.png"), "inputs[1].url")
    assert private.hits == []


async def test_public_url_redirecting_to_a_private_address_is_refused(
    make_fetcher: Callable[..., InputFetcher], public: FileServer, private: FileServer
) -> None:
    fetcher = make_fetcher(allowed_hosts=["127.0.0.2"])
    port = private.server.port
    targets = [
        private.url("/file/img.png"),
        f"http://localhost:{port}/file/img.png",
        f"http://[::ffff:127.0.0.1]:{port}/file/img.png",
        f"http://[64:ff9b::7f00:1]:{port}/file/img.png",
    ]
    for target in targets:
        start = public.url("/redirect") + "?to=" + quote(target + "?token=secret", safe="")
        with pytest.raises(InvalidInputError) as caught:
            await fetch(fetcher, start, "images[0].image")
        message = caught.value.message
        assert re.fullmatch(
            rf"images\[0\]\.image: refusing to fetch {re.escape(public.url('/redirect'))} \(redirected to "
            rf"http://[^ ]+:{port}/file/img\.png\): [^ ]+ is not a public (address|host)",
            message,
        ), message
        assert "secret" not in message
        assert caught.value.details["reason"] == "ssrf_guard"
    assert private.hits == []


async def test_redirects_up_to_the_limit_are_followed_and_more_fail_naming_the_field(
    make_fetcher: Callable[..., InputFetcher],
    public: FileServer,
) -> None:
    fetcher = make_fetcher(allowed_hosts="127.0.0.2")
    assert await fetch(fetcher, public.url("/hops/5"), "inputs[3].url") == image_bytes()
    with pytest.raises(InvalidInputError) as caught:
        await fetch(fetcher, public.url("/hops/6") + "?token=secret", "inputs[3].url")
    assert caught.value.message == f"inputs[3].url: {public.url('/hops/6')} redirects more than 5 times"


async def test_allowed_host_name_is_fetched_even_though_it_resolves_privately(
    make_fetcher: Callable[..., InputFetcher], private: FileServer
) -> None:
    port = private.server.port
    resolver = FakeResolver({"files.internal": ["127.0.0.1"], "other.internal": ["127.0.0.1"]})
    fetcher = make_fetcher(allowed_hosts="files.internal, 10.0.0.0/8", resolver=resolver)
    assert await fetch(fetcher, f"http://files.internal:{port}/file/img.png", "f") == image_bytes()
    with pytest.raises(
        InvalidInputError, match=re.escape("other.internal resolves to 127.0.0.1, which is not a public")
    ):
        await fetch(fetcher, f"http://other.internal:{port}/file/img.png", "f")


async def test_host_name_resolving_into_an_allowed_network_is_fetched(
    make_fetcher: Callable[..., InputFetcher], private: FileServer
) -> None:
    port = private.server.port
    resolver = FakeResolver({"files.internal": ["127.0.0.1"], "meta.internal": ["169.254.169.254"]})
    fetcher = make_fetcher(allowed_hosts=["127.0.0.0/30"], resolver=resolver)
    assert await fetch(fetcher, f"http://files.internal:{port}/file/img.png", "f") == image_bytes()
    assert await fetch(fetcher, private.url("/file/img.png"), "f") == image_bytes()  # a literal in it too
    with pytest.raises(InvalidInputError, match=re.escape("meta.internal resolves to 169.254.169.254")):
        await fetch(fetcher, f"http://meta.internal:{port}/x", "f")


def test_allow_list_parses_names_addresses_and_networks() -> None:
    allowed = AllowedHosts(" Files.Internal. , 10.0.0.0/8,192.168.1.7, [fd00::1], fd12::/16,")
    assert allowed.names == {"files.internal"}
    assert allowed.has_name("FILES.internal.")
    assert not allowed.has_name("evil.files.internal")
    assert allowed.has_address("10.200.0.1")
    assert allowed.has_address("::ffff:10.0.0.1")
    assert allowed.has_address("192.168.1.7")
    assert not allowed.has_address("192.168.1.8")
    assert allowed.has_address("fd00::1")
    assert allowed.has_address("fd12::5")
    assert not allowed.has_address("127.0.0.1")
    assert not AllowedHosts("")
    assert not AllowedHosts([])


@pytest.mark.parametrize("entry", ["10.0.0.0/33", "files.internal:8080", "http://files.internal", "a b"])
def test_allow_list_refuses_entries_it_cannot_read(entry: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(entry)) + r" in the allowed input hosts"):
        AllowedHosts(["ok.internal", entry])
