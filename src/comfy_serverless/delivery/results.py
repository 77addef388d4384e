"""A job's outputs as result items, and the two result shapes the worker answers with.

:func:`deliver` takes the outputs as local files (after :func:`convert_outputs` when the job asked for
another image format) and the texts, decides with :mod:`.policy` how the files go, then base64-encodes
or uploads them (several at once) and returns one item per output.

An item always says how its file came back: inline items carry ``data`` (base64), uploaded ones
``url`` (with ``key`` and ``bucket``), never both. Both carry ``size_bytes`` and ``sha256`` of the
delivered bytes. Text items carry ``text`` and its base64 ``data``.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ..aio import gather_bounded
from ..errors import OutputError
from ..media.convert import MIME_TYPES, ImageFormat, convert_image, convertible
from ..media.outputs import OutputFile, OutputText
from .inline import encode_file
from .policy import DeliveryPlan, SizedItem, plan_delivery
from .storage import S3Store

log = logging.getLogger(__name__)

_T = TypeVar("_T")
_R = TypeVar("_R")

#: Files uploaded or encoded at once.
CONCURRENCY = 4


@dataclass(frozen=True, slots=True)
class LocalOutput:
    """An output file on local disk, ready to deliver."""

    output: OutputFile
    path: Path
    size: int
    #: The subfolder the caller sees (the job's own folder taken off).
    subfolder: str

    @property
    def label(self) -> str:
        """How errors name it: "output x.png of node 9"."""
        return f"output {self.output.filename} of node {self.output.node_id}"


# --- conversion ------------------------------------------------------------------------------------


async def convert_outputs(
    outputs: Sequence[LocalOutput],
    fmt: ImageFormat,
    quality: int,
    *,
    keep_metadata: bool,
    dest_dir: Path,
    concurrency: int = 2,
) -> list[LocalOutput]:
    """The outputs with every still image (see :func:`~..media.convert.convertible`) converted to
    ``fmt`` into ``dest_dir``: new path, size, file name and MIME type. Others come back unchanged.
    Raises OutputError naming the output that could not be converted."""

    async def one(item: LocalOutput) -> LocalOutput:
        if not convertible(item.output):
            return item
        path = await asyncio.to_thread(
            convert_image,
            item.path,
            fmt,
            quality,
            keep_metadata=keep_metadata,
            dest_dir=dest_dir,
            label=item.label,
        )
        if path == item.path:
            return item
        size = (await asyncio.to_thread(path.stat)).st_size
        output = dataclasses.replace(item.output, filename=path.name, mime=MIME_TYPES[fmt])
        return LocalOutput(output=output, path=path, size=size, subfolder=item.subfolder)

    return await gather_bounded(outputs, one, concurrency)


# --- items -----------------------------------------------------------------------------------------


def _file_item(item: LocalOutput) -> dict[str, Any]:
    output = item.output
    shown: dict[str, Any] = {
        "node_id": output.node_id,
        "type": output.kind,
        "filename": output.filename,
        "subfolder": item.subfolder,
        "mime": output.mime,
    }
    if output.animated:
        shown["animated"] = True
    if output.metadata:
        shown["metadata"] = dict(output.metadata)
    if output.folder_type == "temp":
        shown["temp"] = True
    return shown


def text_item(text: OutputText) -> dict[str, Any]:
    return {
        "node_id": text.node_id,
        "type": "text",
        "filename": None,
        "mime": "text/plain",
        "text": text.text,
        "data": base64.b64encode(text.text.encode("utf-8")).decode("ascii"),
    }


def _object_names(job_id: str, outputs: Sequence[LocalOutput]) -> list[str]:
    """A distinct name under the job's key for every output: ``[subfolder/]node-filename``."""
    names: list[str] = []
    taken: set[str] = set()
    for item in outputs:
        base = f"{item.output.node_id}-{item.output.filename}"
        folder = f"{item.subfolder.strip('/')}/" if item.subfolder.strip("/") else ""
        name, counter = f"{folder}{base}", 1
        while name in taken:
            counter += 1
            name = f"{folder}{item.output.node_id}-{counter}-{item.output.filename}"
        taken.add(name)
        names.append(name)
    return names


def plan_for(
    outputs: Sequence[LocalOutput],
    texts: Sequence[OutputText],
    *,
    mode: str,
    store: S3Store | None,
    limit: int,
) -> DeliveryPlan:
    """What :func:`deliver` will do, from the sizes alone (raises as it would)."""
    return plan_delivery(
        mode,
        [SizedItem.file(item.output.filename, item.size) for item in outputs],
        [SizedItem.text(f"text of node {text.node_id}", text.text) for text in texts],
        limit=limit,
        store_available=store is not None,
    )


async def deliver(
    outputs: Sequence[LocalOutput],
    texts: Sequence[OutputText],
    *,
    mode: str,
    store: S3Store | None,
    job_id: str,
    limit: int,
    concurrency: int = CONCURRENCY,
) -> list[dict[str, Any]]:
    """Result items for the files, then the texts, in order.

    ``mode`` is ``inline``, ``s3`` or ``auto`` (see :func:`.policy.plan_delivery`); ``store`` is where
    uploads go (None: no storage); ``limit`` is MAX_INLINE_BYTES. Uploads go under
    ``{prefix}{job_id}/``. Raises OutputError (OutputTooLargeError for a result too large to carry)
    before anything is encoded or uploaded when the sizes already decide it."""
    plan = plan_for(outputs, texts, mode=mode, store=store, limit=limit)
    log.debug(
        "Delivering %d file(s) %s, %d text(s); %d bytes inline",
        len(outputs),
        "uploaded" if plan.method == "s3" else "inline",
        len(texts),
        plan.inline_bytes,
    )
    if plan.method == "s3":
        assert store is not None
        names = dict(zip((id(item) for item in outputs), _object_names(job_id, outputs), strict=True))

        async def upload(item: LocalOutput) -> dict[str, Any]:
            key = store.key_for(job_id, names[id(item)])
            stored = await store.upload(item.path, key, item.output.mime, label=item.label)
            return {
                **_file_item(item),
                "url": stored.url,
                "key": stored.key,
                "bucket": store.bucket,
                "size_bytes": stored.size_bytes,
                "sha256": stored.sha256,
            }

        files = await gather_bounded(outputs, upload, concurrency)
    else:

        async def encode(item: LocalOutput) -> dict[str, Any]:
            try:
                encoded = await encode_file(item.path)
            except OSError as exc:
                raise OutputError(
                    f"{item.label} could not be read: {exc.strerror or exc}",
                    details={"node_id": item.output.node_id, "filename": item.output.filename},
                ) from None
            return {
                **_file_item(item),
                "data": encoded.data,
                "size_bytes": encoded.size_bytes,
                "sha256": encoded.sha256,
            }

        files = await gather_bounded(outputs, encode, concurrency)
    return [*files, *(text_item(text) for text in texts)]


# --- result shapes ---------------------------------------------------------------------------------


def native_result(
    prompt_id: str,
    items: Sequence[dict[str, Any]],
    *,
    seeds: dict[str, int] | None = None,
    warnings: Sequence[str] = (),
) -> dict[str, Any]:
    """``{"status": "success", "prompt_id", "outputs": [...], "seeds"?, "warnings"?}``."""
    result: dict[str, Any] = {"status": "success", "prompt_id": prompt_id, "outputs": list(items)}
    if seeds:
        result["seeds"] = seeds
    if warnings:
        result["warnings"] = list(warnings)
    return result


def worker_comfyui_result(
    items: Sequence[dict[str, Any]],
    *,
    seeds: dict[str, int] | None = None,
    warnings: Sequence[str] = (),
) -> dict[str, Any]:
    """worker-comfyui's shape: ``{"images": [{filename, type: "base64" | "s3_url", data}], "texts"?,
    "errors"?, "status"?, "seeds"?}``; ``status`` is ``success_no_images`` when there is no file."""
    images = [
        {
            "filename": item["filename"],
            "type": "s3_url" if "url" in item else "base64",
            "data": item["url"] if "url" in item else item["data"],
        }
        for item in items
        if item["type"] != "text"
    ]
    result: dict[str, Any] = {"images": images}
    texts = [item["text"] for item in items if item["type"] == "text"]
    if texts:
        result["texts"] = texts
    if warnings:
        result["errors"] = list(warnings)
    if not images:
        result["status"] = "success_no_images"
    if seeds:
        result["seeds"] = seeds
    return result
