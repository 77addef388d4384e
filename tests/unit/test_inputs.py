"""Input decoding and the server-side request forgery guard."""

from __future__ import annotations

import base64

import pytest

from comfy_serverless.errors import InvalidInputError
from comfy_serverless.media.inputs import (
    InputFetcher,
    InputRefused,
    PublicOnlyResolver,
    decode_base64,
    load_input,
)

LIMIT = 1000


def test_base64_variants_decode() -> None:
    data = bytes(range(200))
    plain = base64.b64encode(data).decode()
    assert decode_base64(plain, "f", LIMIT) == data
    assert decode_base64(plain.rstrip("="), "f", LIMIT) == data
    assert decode_base64(base64.urlsafe_b64encode(data).decode(), "f", LIMIT) == data
    assert decode_base64("\n".join(plain[i : i + 60] for i in range(0, len(plain), 60)), "f", LIMIT) == data


def test_oversized_input_is_refused_before_decoding() -> None:
    with pytest.raises(InvalidInputError, match=r"images\[0\]\.image is .* MB, more than"):
        decode_base64("A" * 4000, "images[0].image", LIMIT)


async def test_data_uri_plain_and_base64() -> None:
    fetcher = InputFetcher(limit=LIMIT)
    assert await load_input("data:text/plain,hello%20there", "f", fetcher) == b"hello there"
    assert (
        await load_input("data:image/png;base64," + base64.b64encode(b"png").decode(), "f", fetcher) == b"png"
    )


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
        await fetcher.fetch(url, "images[0].image")
    await fetcher.close()


async def test_resolver_refuses_names_that_resolve_to_private_addresses() -> None:
    resolver = PublicOnlyResolver()
    with pytest.raises(InputRefused, match="not a public address"):
        await resolver.resolve("localhost", 80)
    await resolver.close()
