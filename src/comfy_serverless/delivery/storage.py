"""S3-compatible storage: upload outputs (streamed from disk) and read ``s3://`` inputs.

A :class:`StorageConfig` says where to write and with which credentials: the worker's own (the ``S3_*``
settings) or a job's RunPod ``s3Config``. :class:`StoreCache` keeps one boto3 client per credential set
for the worker's life, so jobs that bring the same credentials reuse its connections. Every boto3 call
runs in a thread, never on the event loop that also carries ComfyUI's WebSocket.

The secret key never leaves the config object: not in a repr, an error message, its details nor a log
line (messages built from a server's answer are scrubbed of it too).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote, urlsplit

import boto3
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    ParamValidationError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)
from pydantic import SecretStr

from ..errors import InputStagingError, InvalidInputError, OutputError
from ..media.inputs import size_error

if TYPE_CHECKING:
    from ..settings import Settings

log = logging.getLogger(__name__)

#: Files above this size go up in parts, this big, at most this many at once: the upload holds at
#: most about ``concurrency * chunk`` bytes in memory whatever the file's size.
MULTIPART_THRESHOLD = 8 * 1024 * 1024
MULTIPART_CHUNK = 8 * 1024 * 1024
MULTIPART_CONCURRENCY = 4
#: Distinct credential sets whose clients are kept (per-job s3Config must not grow the cache forever).
CACHE_SIZE = 32
_READ_CHUNK = 1024 * 1024
_HASH_CHUNK = 1024 * 1024

Origin = Literal["settings", "job"]

_AUTH_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken"}
_DENIED_CODES = {"AccessDenied", "AllAccessDisabled", "403"}
_MISSING_BUCKET_CODES = {"NoSuchBucket"}
_MISSING_KEY_CODES = {"NoSuchKey", "404", "NotFound"}
_SEGMENT_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
# Region in the endpoint of AWS (s3.<r>.amazonaws.com, s3-<r>.amazonaws.com, s3.dualstack.<r>...),
# Backblaze (s3.<r>.backblazeb2.com), Wasabi (s3.<r>.wasabisys.com) and DigitalOcean (<r>.digitaloceanspaces).
_REGION_IN_HOST = (
    re.compile(r"(?:^|\.)s3[.-](?:dualstack\.)?([a-z]{2}(?:-[a-z]+)+-\d+)\.amazonaws\.com$"),
    re.compile(r"(?:^|\.)s3\.([a-z]{2}-[a-z]+-\d{3})\.backblazeb2\.com$"),
    re.compile(r"(?:^|\.)s3\.([a-z]{2}-[a-z]+-\d+)\.wasabisys\.com$"),
    re.compile(r"(?:^|\.)([a-z]{3}\d)\.digitaloceanspaces\.com$"),
)


class _Cancelled(Exception):
    """Raised inside a transfer thread once the job that started it was cancelled."""


# --- configuration ---------------------------------------------------------------------------------


def _normal_prefix(prefix: str) -> str:
    """A key prefix without a leading slash, ending in one (unless empty)."""
    prefix = prefix.lstrip("/")
    return prefix if not prefix or prefix.endswith("/") else prefix + "/"


def safe_key_segment(text: str) -> str:
    """One segment of an object key: ASCII letters, digits, ``.``, ``_`` and ``-`` only, never ``.`` or
    ``..``, never empty."""
    cleaned = _SEGMENT_UNSAFE.sub("_", text).strip("_") or "_"
    return "_" if set(cleaned) == {"."} else cleaned


def region_from_endpoint(endpoint_url: str) -> str | None:
    """The region an endpoint URL names, for providers that put it in the host name; Cloudflare R2 signs
    with ``auto``. None when the host does not say (botocore then signs for us-east-1)."""
    host = (urlsplit(endpoint_url).hostname or "").lower()
    if host.endswith(".r2.cloudflarestorage.com"):
        return "auto"
    for pattern in _REGION_IN_HOST:
        match = pattern.search(host)
        if match:
            return match.group(1)
    return None


def _shown_endpoint(endpoint_url: str | None) -> str:
    if not endpoint_url:
        return "AWS S3"
    parts = urlsplit(endpoint_url)
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}{parts.path}"


@dataclass(frozen=True, slots=True)
class StorageConfig:
    """Where outputs go and with which credentials. The secret shows as ``**********`` in a repr."""

    bucket: str
    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: SecretStr | None = field(default=None, repr=False)
    #: Prepended to every key; ends in "/" (added when missing) unless empty.
    prefix: str = "outputs/"
    #: Seconds a presigned download URL stays valid.
    url_expiry: int = 7 * 24 * 3600
    #: When set, an object's URL is this plus its key (a public bucket or a CDN in front of it) instead
    #: of a presigned URL.
    public_base_url: str | None = None
    #: Whose credentials these are, for the advice in error messages.
    origin: Origin = "settings"

    def __post_init__(self) -> None:
        object.__setattr__(self, "prefix", _normal_prefix(self.prefix))

    @classmethod
    def from_settings(cls, settings: Settings, *, public_base_url: str | None = None) -> StorageConfig | None:
        """The worker's own storage (``S3_*`` settings); None when S3_BUCKET is not set. Without keys,
        boto3's usual chain applies (environment, instance role)."""
        if not settings.s3_bucket:
            return None
        key_id = settings.s3_access_key_id
        return cls(
            bucket=settings.s3_bucket,
            endpoint_url=settings.s3_endpoint_url or None,
            region=settings.s3_region or None,
            access_key_id=key_id.get_secret_value() if key_id is not None else None,
            secret_access_key=settings.s3_secret_access_key,
            prefix=settings.s3_prefix,
            url_expiry=settings.s3_url_expiry,
            public_base_url=public_base_url or None,
        )

    @classmethod
    def from_runpod(cls, s3_config: Any, settings: Settings) -> StorageConfig:
        """A job's RunPod ``s3Config``: ``{"accessId", "accessSecret", "bucketName", "endpointUrl"}``, all
        required non-empty strings, as RunPod documents it (other keys are ignored). The region is read
        from the endpoint where the provider puts it there. Key prefix and URL expiry come from the
        settings; URLs are always presigned (the worker's public base URL serves its own bucket only).

        Raises InvalidInputError naming ``s3Config.<field>``; the secret is never quoted."""
        if not isinstance(s3_config, Mapping):
            raise InvalidInputError(
                "s3Config must be an object with accessId, accessSecret, bucketName and endpointUrl",
                details={"field": "s3Config"},
            )
        values: dict[str, str] = {}
        for name in ("accessId", "accessSecret", "bucketName", "endpointUrl"):
            value = s3_config.get(name)
            if not isinstance(value, str) or not value.strip():
                problem = "is missing" if value is None else "must be a non-empty string"
                raise InvalidInputError(f"s3Config.{name} {problem}", details={"field": f"s3Config.{name}"})
            values[name] = value if name == "accessSecret" else value.strip()
        bucket = values["bucketName"]
        if "/" in bucket or any(c.isspace() for c in bucket):
            raise InvalidInputError(
                f"s3Config.bucketName {bucket!r} is not a bucket name (no slashes or spaces)",
                details={"field": "s3Config.bucketName"},
            )
        endpoint = values["endpointUrl"].rstrip("/")
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.query:
            raise InvalidInputError(
                "s3Config.endpointUrl must be the storage's http(s) address, e.g. "
                "https://s3.us-east-1.amazonaws.com, without credentials or a query",
                details={"field": "s3Config.endpointUrl"},
            )
        return cls(
            bucket=bucket,
            endpoint_url=endpoint,
            region=region_from_endpoint(endpoint),
            access_key_id=values["accessId"],
            secret_access_key=SecretStr(values["accessSecret"]),
            prefix=settings.s3_prefix,
            url_expiry=settings.s3_url_expiry,
            public_base_url=None,
            origin="job",
        )

    @property
    def credentials_key(self) -> tuple[str | None, str | None, str | None, str | None]:
        """What tells one boto3 client from another: endpoint, region, key id and a hash of the secret
        (never the secret itself)."""
        secret = self.secret_access_key
        digest = hashlib.sha256(secret.get_secret_value().encode()).hexdigest() if secret else None
        return (self.endpoint_url, self.region, self.access_key_id, digest)

    @property
    def credentials_hint(self) -> str:
        """Where a user fixes these credentials."""
        if self.origin == "job":
            return "check s3Config.accessId and s3Config.accessSecret"
        return "check S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY"

    def scrub(self, text: str) -> str:
        """``text`` with the secret, should a server ever echo it, replaced."""
        secret = self.secret_access_key.get_secret_value() if self.secret_access_key else ""
        return text.replace(secret, "**********") if secret else text


@dataclass(frozen=True, slots=True)
class StoredObject:
    """An uploaded file."""

    url: str
    key: str
    size_bytes: int
    sha256: str


# --- errors ----------------------------------------------------------------------------------------


def _client_error(exc: BaseException) -> ClientError | None:
    """The ClientError behind an exception (boto3's upload_file wraps it in S3UploadFailedError)."""
    seen: BaseException | None = exc
    for _ in range(4):
        if seen is None:
            return None
        if isinstance(seen, ClientError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _reason(config: StorageConfig, exc: BaseException, *, where: str) -> tuple[str, str]:
    """(code, readable reason) for a failed storage call; ``where`` names the bucket or object."""
    endpoint = _shown_endpoint(config.endpoint_url)
    client_error = _client_error(exc)
    if client_error is not None:
        error = client_error.response.get("Error", {})
        status = client_error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        code = str(error.get("Code") or status or "error")
        if code in _MISSING_BUCKET_CODES:
            return code, f"the bucket does not exist at {endpoint}"
        if code == "InvalidAccessKeyId":
            return code, f"{endpoint} does not know the access key id; {config.credentials_hint}"
        if code in _AUTH_CODES:
            return (
                code,
                f"{endpoint} refused the signature; {config.credentials_hint} (the secret must belong to the access key)",
            )
        if code in _DENIED_CODES:
            return code, f"access denied: these credentials may not use {where}"
        message = config.scrub(str(error.get("Message") or "")).strip()
        return code, f"{endpoint} answered {code}" + (f": {message}" if message else "")
    if isinstance(exc, NoCredentialsError):
        return "no_credentials", f"no credentials were found; {config.credentials_hint}"
    if isinstance(exc, BotoConnectionError):
        return "unreachable", f"could not connect to the storage at {endpoint}"
    if isinstance(exc, ParamValidationError):
        return "invalid_parameter", config.scrub(str(exc))
    return type(exc).__name__, config.scrub(str(exc) or type(exc).__name__)


# --- the store -------------------------------------------------------------------------------------


def default_transfer_config() -> TransferConfig:
    return TransferConfig(
        multipart_threshold=MULTIPART_THRESHOLD,
        multipart_chunksize=MULTIPART_CHUNK,
        max_concurrency=MULTIPART_CONCURRENCY,
        use_threads=True,
    )


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Mark a task's outcome as seen: the first failure of a group is the one reported."""
    if not task.cancelled():
        task.exception()


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class S3Store:
    """Uploads to one bucket and reads ``s3://`` inputs, through a client shared by every store with
    the same credentials (see :class:`StoreCache`)."""

    def __init__(self, config: StorageConfig, client: Any, transfer: TransferConfig | None = None):
        self.config = config
        self.client = client
        self.transfer = transfer or default_transfer_config()

    def __repr__(self) -> str:
        return f"S3Store({self.config!r})"

    @property
    def bucket(self) -> str:
        return self.config.bucket

    def key_for(self, job_id: str, name: str) -> str:
        """``{prefix}{job_id}/{name}``, each part made safe: no ``..``, no leading or doubled ``/``,
        ASCII letters, digits, ``._-`` only. ``name`` may hold ``/`` for subfolders."""
        parts = [safe_key_segment(part) for part in name.split("/") if part.strip()]
        return f"{self.config.prefix}{safe_key_segment(job_id)}/{'/'.join(parts) or '_'}"

    def url_for(self, key: str) -> str:
        """Where callers download an object: under the public base URL when one is set, else a
        presigned GET (computed locally, no request)."""
        if self.config.public_base_url:
            return f"{self.config.public_base_url.rstrip('/')}/{quote(key, safe='/')}"
        url: str = self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=self.config.url_expiry
        )
        return url

    def _upload(self, path: Path, key: str, mime: str, cancelled: threading.Event) -> str:
        def progress(_: int) -> None:
            if cancelled.is_set():
                raise _Cancelled

        self.client.upload_file(
            str(path),
            self.bucket,
            key,
            ExtraArgs={"ContentType": mime},
            Config=self.transfer,
            Callback=progress,
        )
        return self.url_for(key)

    async def upload(self, path: Path, key: str, mime: str, *, label: str) -> StoredObject:
        """Upload a file from disk (in parts when large, never whole in memory) and return where it is.

        ``label`` names the file in errors, e.g. "output x.png of node 9". Raises OutputError naming the
        label and the bucket (missing bucket, wrong key or secret, denied, unreachable endpoint). If the
        caller is cancelled, the transfer stops at its next piece, in the background."""
        cancelled = threading.Event()
        try:
            size = (await asyncio.to_thread(path.stat)).st_size
            tasks = (
                asyncio.ensure_future(asyncio.to_thread(self._upload, path, key, mime, cancelled)),
                asyncio.ensure_future(asyncio.to_thread(_sha256_of, path)),
            )
            try:
                url, sha256 = await asyncio.gather(*tasks)
            except BaseException:
                cancelled.set()
                for task in tasks:
                    task.cancel()
                    task.add_done_callback(_retrieve)
                raise
        except OSError as exc:
            raise OutputError(
                f"{label} could not be read for upload: {exc.strerror or exc}",
                details={"bucket": self.bucket, "key": key},
            ) from None
        except (BotoCoreError, ClientError, S3UploadFailedError) as exc:
            code, reason = _reason(self.config, exc, where=f"bucket {self.bucket}")
            log.warning("Upload of %s to bucket %s failed (%s)", label, self.bucket, code)
            raise OutputError(
                f"uploading {label} to bucket {self.bucket} failed: {reason}",
                details={
                    "bucket": self.bucket,
                    "key": key,
                    "reason": code,
                    "endpoint": _shown_endpoint(self.config.endpoint_url),
                },
            ) from None
        log.debug("Uploaded %s (%d bytes) to %s/%s", label, size, self.bucket, key)
        return StoredObject(url=url, key=key, size_bytes=size, sha256=sha256)

    def _download(
        self, bucket: str, key: str, dest: Path, limit: int, field: str, cancelled: threading.Event
    ) -> int:
        shown = f"s3://{bucket}/{key}"
        answer = self.client.get_object(Bucket=bucket, Key=key)
        body = answer["Body"]
        try:
            length = answer.get("ContentLength")
            if isinstance(length, int) and length > limit:
                raise size_error(field, length, limit)
            size = 0
            with dest.open("r+b") as file:
                file.truncate(0)
                while True:
                    chunk = body.read(_READ_CHUNK)
                    if cancelled.is_set():
                        raise _Cancelled
                    if not chunk:
                        break
                    size += len(chunk)
                    if size > limit:
                        raise size_error(field, size, limit)
                    file.write(chunk)
            log.debug("Read %s (%d bytes) into %s", shown, size, dest.name)
            return size
        finally:
            body.close()

    async def download(self, bucket: str, key: str, dest: Path, *, limit: int, field: str) -> int:
        """Write the object ``s3://bucket/key`` into ``dest`` (an existing file, overwritten in place)
        and return its size; staging's ``S3Reader``.

        Errors are JobErrors naming ``field`` and the object: InvalidInputError for a missing bucket or
        key, refused credentials, denied access or more than ``limit`` bytes; InputStagingError when the
        storage cannot be reached or fails. Errors writing ``dest`` (OSError) go through unchanged. When
        the caller is cancelled, this returns only once the thread has stopped touching ``dest``."""
        shown = f"s3://{bucket}/{key}"
        cancelled = threading.Event()
        task = asyncio.ensure_future(
            asyncio.to_thread(self._download, bucket, key, dest, limit, field, cancelled)
        )
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            cancelled.set()
            await asyncio.wait({task})
            _retrieve(task)  # the cancellation is what goes on
            raise
        except (BotoCoreError, ClientError) as exc:
            code, reason = _reason(self.config, exc, where=shown)
            details = {"field": field, "bucket": bucket, "key": key, "reason": code}
            if code in _MISSING_KEY_CODES:
                raise InvalidInputError(f"{field}: {shown} does not exist", details=details) from None
            if code in _MISSING_BUCKET_CODES:
                raise InvalidInputError(
                    f"{field}: bucket {bucket} of {shown} does not exist", details=details
                ) from None
            if code in _AUTH_CODES or code in _DENIED_CODES or code == "no_credentials":
                raise InvalidInputError(
                    f"{field}: reading {shown} failed: {reason}", details=details
                ) from None
            raise InputStagingError(f"{field}: reading {shown} failed: {reason}", details=details) from None


# --- clients ---------------------------------------------------------------------------------------


def _client_config(transfer: TransferConfig) -> Config:
    return Config(
        signature_version="s3v4",
        retries={"max_attempts": 3, "mode": "standard"},
        connect_timeout=10,
        read_timeout=60,
        # Room for a few concurrent uploads of several parts each.
        max_pool_connections=max(10, 4 * int(transfer.max_request_concurrency)),
        # Checksums only where S3 requires them: many S3-compatible stores refuse the trailing
        # checksums botocore otherwise adds to every upload.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )


class StoreCache:
    """One boto3 client per credential set (endpoint, region, key id, secret), kept across jobs; at
    most ``size`` of them, the least recently used dropped first. Safe to use from several threads."""

    def __init__(self, size: int = CACHE_SIZE, *, transfer: TransferConfig | None = None):
        self.size = max(1, size)
        self.transfer = transfer or default_transfer_config()
        self._clients: OrderedDict[tuple[str | None, ...], Any] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._clients)

    def _new_client(self, config: StorageConfig) -> Any:
        secret = config.secret_access_key
        # A session per client: boto3's shared default session is not safe to create clients from
        # several threads at once.
        session = boto3.session.Session()
        return session.client(
            "s3",
            endpoint_url=config.endpoint_url,
            region_name=config.region,
            aws_access_key_id=config.access_key_id,
            aws_secret_access_key=secret.get_secret_value() if secret is not None else None,
            config=_client_config(self.transfer),
        )

    def get(self, config: StorageConfig) -> S3Store:
        """A store for ``config``, on the cached client for its credentials (made on first use)."""
        key = config.credentials_key
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = self._new_client(config)
                self._clients[key] = client
                while len(self._clients) > self.size:
                    self._clients.popitem(last=False)
            else:
                self._clients.move_to_end(key)
        return S3Store(config, client, self.transfer)


__all__ = [
    "S3Store",
    "StorageConfig",
    "StoreCache",
    "StoredObject",
    "region_from_endpoint",
    "safe_key_segment",
]
