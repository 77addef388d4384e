"""Building a job's input: a workflow file or a template, ``params``, and local files that travel
inline (base64) or through the caller's bucket.

RunPod refuses a ``/run`` request over 10 MB, and base64 makes a file 4/3 its size. :func:`prepare_input`
therefore measures the exact request a job would make with every file inline; while it is over the
limit, the largest remaining file is uploaded instead (so the fewest, largest files go through storage)
and its entry carries a ``url``. Without an :class:`InputStorage`, an input that cannot fit raises
:class:`~.errors.InputTooLarge` before anything is sent.

An uploaded file reaches the worker as a presigned https URL by default: it needs no credentials on the
worker's side and no change to where the job's outputs go. ``send_as="s3_url"`` sends ``s3://bucket/key``
instead, with the bucket's credentials as the job's RunPod ``s3Config``; the worker then reads the input
with them, and also uploads that job's outputs to the same bucket. Either way the storage must be
reachable from the worker (a public address, or one its ``INPUT_URL_ALLOWED_HOSTS`` allows).

Uploaded objects are named by content (``{prefix}{sha256}/{name}``), so submitting the same file again
does not upload it twice, and a job's input digest (sha256 of its canonical JSON, with each local file
standing as its name and sha256) does not depend on the upload or on a URL's signature.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import mimetypes
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import SecretStr

from ..delivery.storage import StorageConfig, StoreCache
from ..errors import bytes_text
from .errors import InputTooLarge, InputUploadFailed

log = logging.getLogger(__name__)

#: RunPod's payload limits: ``/run`` (which this client uses) and ``/runsync``.
RUN_BODY_LIMIT = 10 * 1000 * 1000
RUNSYNC_BODY_LIMIT = 20 * 1000 * 1000

_HASH_CHUNK = 1024 * 1024
PathLike = str | os.PathLike[str]


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no spaces, UTF-8: the same value always gives the same bytes."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def input_digest(value: Any) -> str:
    """sha256 of the canonical JSON of a job input."""
    return hashlib.sha256(canonical_json(value)).hexdigest()


def _b64_length(size: int) -> int:
    return 4 * ((size + 2) // 3)


@dataclass(frozen=True)
class LocalFile:
    """A file on this machine that a loader node reads as ``[subfolder/]name``."""

    path: Path
    name: str
    subfolder: str | None = None

    @property
    def size(self) -> int:
        return self.path.stat().st_size

    def sha256(self) -> str:
        digest = hashlib.sha256()
        with self.path.open("rb") as file:
            while chunk := file.read(_HASH_CHUNK):
                digest.update(chunk)
        return digest.hexdigest()

    def base64(self) -> str:
        return base64.b64encode(self.path.read_bytes()).decode("ascii")

    @property
    def mime(self) -> str:
        return mimetypes.guess_type(self.name)[0] or "application/octet-stream"


def load_workflow(workflow: PathLike | Mapping[str, Any]) -> dict[str, Any]:
    """A workflow object: as given, or read from a JSON file. Either format (the editor's saved file or
    Export (API)) is sent as is: the worker converts editor files itself."""
    if isinstance(workflow, Mapping):
        return dict(workflow)
    path = Path(workflow)
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"cannot read workflow {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise ValueError(f"workflow {path} is not JSON: {exc}") from None
    if not isinstance(loaded, dict):
        raise ValueError(f"workflow {path} holds a JSON {type(loaded).__name__}, not an object")
    return loaded


class JobInput:
    """A job's input with local files: ``fields`` is the JSON input; ``files`` go out as ``inputs``
    entries, ``parameter_files`` as template parameters (``image``, ``video``), each inline or uploaded
    by :func:`prepare_input`."""

    def __init__(
        self,
        fields: Mapping[str, Any] | None = None,
        *,
        files: Mapping[str, PathLike] | None = None,
    ):
        self.fields: dict[str, Any] = dict(fields or {})
        self.files: list[LocalFile] = []
        self.parameter_files: dict[str, LocalFile] = {}
        for name, path in (files or {}).items():
            self.add_file(name, path)

    @classmethod
    def from_workflow(
        cls,
        workflow: PathLike | Mapping[str, Any],
        *,
        params: Mapping[str, Mapping[str, Any]] | None = None,
        files: Mapping[str, PathLike] | None = None,
        **fields: Any,
    ) -> JobInput:
        """A workflow (a JSON file's path, or the object), ``params`` set on its nodes (``{node id or
        title: {input: value}}``), local ``files`` loaders read (``{"name.png": path}``, or
        ``{"masks/name.png": path}`` for a subfolder), and other job fields (``timeout``,
        ``delivery``, ``output_format``, ...)."""
        job = cls({"workflow": load_workflow(workflow), **fields}, files=files)
        if params:
            job.fields["params"] = {str(node): dict(values) for node, values in params.items()}
        return job

    @classmethod
    def from_template(
        cls,
        template: str,
        *,
        params: Mapping[str, Mapping[str, Any]] | None = None,
        files: Mapping[str, PathLike] | None = None,
        **parameters: Any,
    ) -> JobInput:
        """A shipped or custom template by name with its parameters. A parameter given as a
        :class:`pathlib.Path` is a local file (a media parameter such as ``image``), sent inline or
        uploaded; job fields (``timeout``, ...) go among the parameters, as the worker expects."""
        job = cls({"template": template}, files=files)
        for name, value in parameters.items():
            if isinstance(value, os.PathLike):
                job.parameter_files[name] = LocalFile(Path(value), Path(value).name)
            else:
                job.fields[name] = value
        if params:
            job.fields["params"] = {str(node): dict(values) for node, values in params.items()}
        return job

    def add_file(self, name: str, path: PathLike, *, subfolder: str | None = None) -> JobInput:
        """Send a local file that loaders read as ``name`` (``sub/name`` puts it in a subfolder)."""
        folder, _, plain = name.rpartition("/")
        file = LocalFile(Path(path), plain, subfolder or folder or None)
        if not file.path.is_file():
            raise ValueError(f"input file {name!r}: {file.path} is not a file")
        self.files.append(file)
        return self

    @property
    def timeout(self) -> float | None:
        value = self.fields.get("timeout")
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None

    def logical(self, hashes: Mapping[Path, str] | None = None) -> dict[str, Any]:
        """The input with each local file standing as its name and sha256: what :meth:`digest` hashes."""
        hashes = hashes or {}

        def sha(file: LocalFile) -> str:
            return hashes.get(file.path) or file.sha256()

        value = dict(self.fields)
        if self.files:
            value["inputs"] = [
                *self.fields.get("inputs", []),
                *(_entry(file, {"sha256": sha(file)}) for file in self.files),
            ]
        for name, file in self.parameter_files.items():
            value[name] = {"local_file_sha256": sha(file)}
        return value

    def digest(self) -> str:
        return input_digest(self.logical())


def _entry(file: LocalFile, content: Mapping[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": file.name, **content}
    if file.subfolder:
        entry["subfolder"] = file.subfolder
    return entry


# --- storage ---------------------------------------------------------------------------------------


class InputStorage:
    """The caller's bucket, for input files too large to send inline (boto3, through the worker's own
    :class:`~comfy_serverless.delivery.storage.StoreCache`: one client per credential set)."""

    def __init__(
        self,
        config: StorageConfig,
        *,
        send_as: Literal["presigned_url", "s3_url"] = "presigned_url",
        cache: StoreCache | None = None,
    ):
        if send_as == "s3_url" and not (
            config.endpoint_url and config.access_key_id and config.secret_access_key
        ):
            raise ValueError(
                "send_as='s3_url' hands the bucket's credentials to the worker as s3Config, which needs "
                "endpoint_url, access_key_id and secret_access_key"
            )
        self.config = config
        self.send_as = send_as
        self.cache = cache or StoreCache()

    @classmethod
    def s3(
        cls,
        bucket: str,
        *,
        endpoint_url: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        region: str | None = None,
        prefix: str = "inputs/",
        url_expiry: int = 24 * 3600,
        send_as: Literal["presigned_url", "s3_url"] = "presigned_url",
    ) -> InputStorage:
        """A bucket by its settings. Presigned URLs stay valid ``url_expiry`` seconds: long enough for
        the job to leave the queue (the worker downloads its inputs when it starts the job)."""
        config = StorageConfig(
            bucket=bucket,
            endpoint_url=endpoint_url,
            region=region,
            access_key_id=access_key_id,
            secret_access_key=SecretStr(secret_access_key) if secret_access_key else None,
            prefix=prefix,
            url_expiry=url_expiry,
        )
        return cls(config, send_as=send_as)

    def __repr__(self) -> str:
        return f"InputStorage({self.config!r}, send_as={self.send_as!r})"

    def s3_config(self) -> dict[str, str] | None:
        """RunPod's ``s3Config`` for a job whose inputs are ``s3://`` URLs; None for presigned URLs."""
        if self.send_as != "s3_url":
            return None
        secret = self.config.secret_access_key
        assert secret is not None and self.config.endpoint_url and self.config.access_key_id
        return {
            "accessId": self.config.access_key_id,
            "accessSecret": secret.get_secret_value(),
            "bucketName": self.config.bucket,
            "endpointUrl": self.config.endpoint_url,
        }

    def upload(self, file: LocalFile, sha256: str) -> str:
        """Put the file in the bucket (unless an object with its content is already there) and return
        the URL the worker reads it from."""
        store = self.cache.get(self.config)
        key = store.key_for(sha256, file.name)
        size = file.size
        try:
            try:
                head = store.client.head_object(Bucket=store.bucket, Key=key)
                present = head.get("ContentLength") == size
            except ClientError as exc:
                if str(exc.response.get("Error", {}).get("Code")) not in ("404", "NoSuchKey", "NotFound"):
                    raise
                present = False
            if present:
                log.debug("Input %s is already in bucket %s as %s", file.name, store.bucket, key)
            else:
                store.client.upload_file(
                    str(file.path),
                    store.bucket,
                    key,
                    ExtraArgs={"ContentType": file.mime},
                    Config=store.transfer,
                )
                log.info("Uploaded input %s (%s) to bucket %s", file.name, bytes_text(size), store.bucket)
        except (BotoCoreError, ClientError, OSError) as exc:
            raise InputUploadFailed(
                f"uploading input {file.name} to bucket {store.bucket} failed: {self.config.scrub(str(exc))}"
            ) from None
        if self.send_as == "s3_url":
            return f"s3://{store.bucket}/{key}"
        return store.url_for(key)


# --- preparing a request ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PreparedInput:
    """The JSON input to send, its digest, the ``s3Config`` its uploads need (if any) and the names of
    the files that were uploaded."""

    input: dict[str, Any]
    digest: str
    s3_config: dict[str, str] | None = None
    uploaded: tuple[str, ...] = field(default=())


def prepare_input(
    job_input: JobInput | Mapping[str, Any], storage: InputStorage | None, limit: int
) -> PreparedInput:
    """The input to send, with every local file inline while the encoded input stays within ``limit``
    bytes, the largest ones uploaded otherwise (see the module's docstring). Raises InputTooLarge when
    it cannot fit and there is no storage, InputUploadFailed when an upload fails."""
    if not isinstance(job_input, JobInput):
        value = dict(job_input)
        size = len(canonical_json(value))
        if size > limit:
            raise InputTooLarge(
                f"the job input is {bytes_text(size)}, over the {bytes_text(limit)} RunPod accepts in one "
                "request; send large files as URLs, or build it with JobInput and an InputStorage"
            )
        return PreparedInput(input=value, digest=input_digest(value))
    slots: list[tuple[str, LocalFile]] = [("inputs", file) for file in job_input.files]
    slots += [(name, file) for name, file in job_input.parameter_files.items()]
    hashes = {file.path: file.sha256() for _, file in slots}
    digest = input_digest(job_input.logical(hashes))
    sent: dict[int, dict[str, Any]] = {}  # slot index -> {"url": ...} for uploaded files

    def build(placeholder: bool) -> dict[str, Any]:
        value = dict(job_input.fields)
        entries = list(job_input.fields.get("inputs", []))
        for index, (where, file) in enumerate(slots):
            content = sent.get(index) or {"data": "" if placeholder else file.base64()}
            if where == "inputs":
                entries.append(_entry(file, content))
            else:
                value[where] = content.get("url", content.get("data"))
        if len(entries) > len(job_input.fields.get("inputs", [])):
            value["inputs"] = entries
        return value

    def size_now() -> int:
        skeleton = len(json.dumps(build(True), separators=(",", ":"), ensure_ascii=False).encode())
        inline = sum(_b64_length(file.size) for index, (_, file) in enumerate(slots) if index not in sent)
        return skeleton + inline

    while (size := size_now()) > limit:
        waiting = [index for index in range(len(slots)) if index not in sent]
        if storage is None or not waiting:
            largest = sorted(slots, key=lambda slot: slot[1].size, reverse=True)[:3]
            names = ", ".join(f"{file.name} ({bytes_text(file.size)})" for _, file in largest)
            advice = (
                "give the client an InputStorage (your bucket) to upload large files"
                if storage is None
                else "even with every file uploaded the rest of the input is too large"
            )
            raise InputTooLarge(
                f"the job input would be {bytes_text(size)} with its files inline (base64), over the "
                f"{bytes_text(limit)} RunPod accepts in one request; largest files: {names}; {advice}"
            )
        index = max(waiting, key=lambda i: slots[i][1].size)
        file = slots[index][1]
        sent[index] = {"url": storage.upload(file, hashes[file.path])}
    value = build(False)
    uploaded = tuple(slots[index][1].name for index in sorted(sent))
    s3_config = storage.s3_config() if storage is not None and uploaded else None
    return PreparedInput(input=value, digest=digest, s3_config=s3_config, uploaded=uploaded)


__all__ = [
    "RUNSYNC_BODY_LIMIT",
    "RUN_BODY_LIMIT",
    "InputStorage",
    "JobInput",
    "LocalFile",
    "PreparedInput",
    "canonical_json",
    "input_digest",
    "load_workflow",
    "prepare_input",
]
