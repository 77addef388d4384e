"""Whether a job's files come back inline (base64 in the result) or as URLs from storage.

Decided from the real sizes of the files before anything is encoded, so a result too large for RunPod
fails at once, without building strings that would be thrown away. The limit (MAX_INLINE_BYTES) counts
what the result carries inline: the base64 text of each inline file, and each text output twice (it
comes back as ``text`` and as base64 ``data``).

``auto`` is all or nothing: when the inline result would pass the limit and storage is available,
every file is uploaded and the result holds only URLs (and the texts). One shape per job is simpler for
callers than a mix that depends on sizes; the uploads run concurrently, so small files cost little.
Texts are never uploaded: they count toward the limit in every mode.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from ..errors import OutputError, OutputTooLargeError, bytes_text
from .inline import base64_len

Method = Literal["inline", "s3"]

_STORAGE_ADVICE = "set S3_BUCKET (and its credentials) on the worker or send s3Config with the job"


@dataclass(frozen=True, slots=True)
class SizedItem:
    """One output as the policy sees it: a name for messages and its size inline, in bytes."""

    label: str
    inline_bytes: int

    @classmethod
    def file(cls, label: str, size: int) -> SizedItem:
        """A file of ``size`` bytes: inline it is base64."""
        return cls(label, base64_len(size))

    @classmethod
    def text(cls, label: str, text: str) -> SizedItem:
        """A text output: inline it is the text and its base64 (UTF-8 bytes; JSON escapes aside)."""
        size = len(text.encode("utf-8"))
        return cls(label, size + base64_len(size))


@dataclass(frozen=True, slots=True)
class DeliveryPlan:
    """How the files go: ``inline`` or ``s3`` (every file uploaded); what the result carries inline."""

    method: Method
    inline_bytes: int


def _listing(items: Sequence[SizedItem]) -> str:
    biggest = sorted(items, key=lambda item: item.inline_bytes, reverse=True)[:3]
    return ", ".join(f"{item.label} {bytes_text(item.inline_bytes)}" for item in biggest)


def _too_large(what: str, items: Sequence[SizedItem], limit: int, advice: str) -> OutputTooLargeError:
    total = sum(item.inline_bytes for item in items)
    return OutputTooLargeError(
        f"{what} {bytes_text(total)} as base64, more than the {bytes_text(limit)} a RunPod result can "
        f"carry (MAX_INLINE_BYTES; largest: {_listing(items)}); {advice}",
        details={
            "inline_bytes": total,
            "limit": limit,
            "largest": [
                {"name": item.label, "inline_bytes": item.inline_bytes}
                for item in sorted(items, key=lambda item: item.inline_bytes, reverse=True)[:3]
            ],
        },
    )


def plan_delivery(
    mode: str,
    files: Sequence[SizedItem],
    texts: Sequence[SizedItem] = (),
    *,
    limit: int,
    store_available: bool,
) -> DeliveryPlan:
    """Decide how ``files`` leave the worker under the requested ``mode`` (``inline``, ``s3`` or
    ``auto``, from the job or the DELIVERY setting).

    ``inline`` keeps everything in the result; ``s3`` uploads every file; ``auto`` uploads every file
    only when the inline result would be larger than ``limit`` and storage is available. A result
    exactly at the limit stays inline.

    Raises OutputError when ``s3`` is asked for without storage, and OutputTooLargeError (listing the
    largest items) when what must stay inline is over the limit."""
    if mode not in ("inline", "s3", "auto"):
        raise ValueError(f"unknown delivery mode {mode!r}")
    text_bytes = sum(item.inline_bytes for item in texts)
    everything = [*files, *texts]
    inline_bytes = text_bytes + sum(item.inline_bytes for item in files)
    if mode == "s3" and not store_available:
        raise OutputError(
            f'delivery "s3" needs storage and none is configured: {_STORAGE_ADVICE}',
            details={"delivery": "s3"},
        )
    upload = mode == "s3" or (mode == "auto" and store_available and bool(files) and inline_bytes > limit)
    if not upload:
        if inline_bytes > limit:
            if mode == "inline" and store_available:
                advice = 'ask for delivery "auto" or "s3" to receive URLs instead'
            elif mode == "inline":
                advice = f'{_STORAGE_ADVICE}, with delivery "auto" or "s3", to receive URLs instead'
            else:
                advice = f"{_STORAGE_ADVICE} to receive URLs instead"
            raise _too_large("The outputs are", everything, limit, advice)
        return DeliveryPlan("inline", inline_bytes)
    if text_bytes > limit:
        raise _too_large(
            "The text outputs are",
            texts,
            limit,
            "texts always come back inline, so the workflow must produce less text",
        )
    return DeliveryPlan("s3", text_bytes)
