"""Inline or uploaded: decided from the real sizes, exactly at the limit, texts counted, and errors that
say in readable units what is too large and what to set."""

from __future__ import annotations

import pytest

from comfy_serverless.delivery.inline import base64_len
from comfy_serverless.delivery.policy import SizedItem, plan_delivery
from comfy_serverless.errors import OutputError, OutputTooLargeError

LIMIT = base64_len(3000)  # 4000 bytes of base64: a 3000-byte file fits exactly


def _files(*sizes: int) -> list[SizedItem]:
    return [SizedItem.file(f"f{i}.png", size) for i, size in enumerate(sizes)]


@pytest.mark.parametrize(
    ("mode", "size", "store", "method"),
    [
        ("auto", 3000, True, "inline"),  # exactly at the limit stays inline
        ("auto", 3001, True, "s3"),  # one byte over uploads
        ("auto", 1, True, "inline"),
        ("s3", 1, True, "s3"),  # s3 uploads whatever the size
        ("inline", 3000, False, "inline"),
        ("inline", 3000, True, "inline"),
        ("auto", 3000, False, "inline"),
    ],
)
def test_the_method_follows_mode_size_and_storage(mode: str, size: int, store: bool, method: str) -> None:
    plan = plan_delivery(mode, _files(size), limit=LIMIT, store_available=store)
    assert plan.method == method


def test_the_sum_of_all_files_counts() -> None:
    assert plan_delivery("auto", _files(1500, 1500), limit=LIMIT, store_available=True).method == "inline"
    plan = plan_delivery("auto", _files(1500, 1500, 3), limit=LIMIT, store_available=True)
    assert plan.method == "s3" and plan.inline_bytes == 0


def test_texts_count_twice_and_can_tip_auto_over_the_limit() -> None:
    files = _files(2997)  # 3996 bytes of base64
    text = SizedItem.text("text of node 7", "ab")  # "ab" plus its base64 "YWI=": 6 bytes
    assert text.inline_bytes == 6
    assert plan_delivery("auto", files, limit=LIMIT, store_available=True).method == "inline"
    plan = plan_delivery("auto", files, [text], limit=LIMIT, store_available=True)
    assert plan.method == "s3" and plan.inline_bytes == 6  # the text stays inline


def test_text_size_is_counted_in_utf8_bytes() -> None:
    assert SizedItem.text("t", "é").inline_bytes == 2 + 4


def test_s3_without_storage_says_what_to_configure() -> None:
    with pytest.raises(OutputError) as caught:
        plan_delivery("s3", _files(10), limit=LIMIT, store_available=False)
    assert not isinstance(caught.value, OutputTooLargeError)
    assert caught.value.message == (
        'delivery "s3" needs storage and none is configured: set S3_BUCKET (and its credentials) on '
        "the worker or send s3Config with the job"
    )


def test_too_large_without_storage_lists_the_largest_in_readable_units() -> None:
    files = [
        SizedItem.file("video.mp4", 1500),
        SizedItem.file("tiny.png", 600),
        SizedItem.file("mid.png", 900),
        SizedItem.file("smallest.png", 3),
    ]
    with pytest.raises(OutputTooLargeError) as caught:
        plan_delivery("auto", files, limit=2000, store_available=False)
    assert caught.value.message == (
        "The outputs are 4.0 kB as base64, more than the 2.0 kB a RunPod result can carry "
        "(MAX_INLINE_BYTES; largest: video.mp4 2.0 kB, mid.png 1.2 kB, tiny.png 800 bytes); "
        "set S3_BUCKET (and its credentials) on the worker or send s3Config with the job to receive "
        "URLs instead"
    )
    assert caught.value.details["inline_bytes"] == 4004 and caught.value.details["limit"] == 2000


def test_megabytes_for_large_outputs() -> None:
    with pytest.raises(
        OutputTooLargeError, match=r"are 24\.0 MB as base64, more than the 18\.9 MB .*big\.mp4 24\.0 MB"
    ):
        plan_delivery(
            "auto", [SizedItem.file("big.mp4", 18_000_000)], limit=18 * 1024 * 1024, store_available=False
        )


def test_inline_with_storage_suggests_another_delivery() -> None:
    with pytest.raises(
        OutputTooLargeError, match=r'ask for delivery "auto" or "s3" to receive URLs instead$'
    ):
        plan_delivery("inline", _files(3001), limit=LIMIT, store_available=True)
    with pytest.raises(OutputTooLargeError, match='send s3Config with the job, with delivery "auto" or "s3"'):
        plan_delivery("inline", _files(3001), limit=LIMIT, store_available=False)


def test_texts_too_large_fail_even_when_files_can_be_uploaded() -> None:
    text = SizedItem.text("text of node 3", "x" * 3000)
    for mode in ("auto", "s3"):
        with pytest.raises(
            OutputTooLargeError, match=r"^The text outputs are 7\.0 kB as base64.*text of node 3"
        ):
            plan_delivery(mode, _files(10), [text], limit=LIMIT, store_available=True)


def test_no_outputs_at_all_fit() -> None:
    plan = plan_delivery("auto", [], limit=LIMIT, store_available=False)
    assert plan.method == "inline" and plan.inline_bytes == 0
