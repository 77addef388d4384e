"""Download manifest models and prove each one by its sha256; a mismatch is an error, never a warning.

Plain ``urllib`` streaming (``http``, ``https`` and ``file`` URLs), so it runs in any Python the image
has, at build time as well as on a pod that fills a network volume. Each file is hashed while it is
written, written under a temporary name and renamed only once its sha256 matches. Interrupted
downloads resume with an HTTP range request when the server allows it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import IO, Literal

from .. import __version__
from .manifest import ModelEntry

log = logging.getLogger(__name__)

CHUNK = 8 * 1024 * 1024
USER_AGENT = f"comfy-serverless/{__version__} (model-fetch)"
DEFAULT_SECRETS_DIR = Path("/run/secrets")
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class DownloadError(RuntimeError):
    """A model could not be fetched; the message names the file, the URL and the cause."""


class ChecksumMismatch(DownloadError):
    """The bytes fetched do not have the sha256 the manifest promises."""

    def __init__(self, entry: ModelEntry, actual: str, size: int) -> None:
        self.entry = entry
        self.actual = actual
        self.size = size
        super().__init__(
            f"sha256 mismatch for {entry.relative_path} from {entry.url}: expected {entry.sha256}, "
            f"got {actual} ({size} bytes). The file at that URL changed, the URL is wrong, or the "
            "manifest's sha256 is wrong. Pin the URL to a revision and fix the manifest; "
            "nothing was installed."
        )


@dataclass(frozen=True)
class FetchResult:
    """What happened to one entry: already there and verified, copied from the cache, or downloaded."""

    entry: ModelEntry
    path: Path
    status: Literal["present", "cached", "downloaded"]
    size: int


def sha256_file(path: Path, chunk: int = CHUNK) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def resolve_token(entry: ModelEntry, env: Mapping[str, str], secrets_dir: Path | None) -> str | None:
    """The bearer token for ``entry``: ``$TOKEN_ENV``, else the BuildKit secret file of that name."""
    if not entry.token_env:
        return None
    value = env.get(entry.token_env, "").strip()
    if value:
        return value
    if secrets_dir is not None:
        secret = secrets_dir / entry.token_env
        with contextlib.suppress(OSError):
            value = secret.read_text(encoding="utf-8").strip()
            if value:
                return value
    raise DownloadError(
        f"{entry.relative_path} needs a token in ${entry.token_env} (or the build secret "
        f"`{entry.token_env}`), and none is set. At build time pass it with "
        f"`docker build --secret id={entry.token_env},env={entry.token_env} ...`."
    )


def _may_send_token(url: str) -> bool:
    """Tokens travel only encrypted, or to this machine's loopback (local mirrors, tests)."""
    parsed = urllib.parse.urlparse(url)
    return parsed.scheme == "https" or (parsed.scheme == "http" and parsed.hostname in _LOOPBACK)


def _open(url: str, token: str | None, offset: int, timeout: float) -> IO[bytes]:
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if token and _may_send_token(url):
        # Unredirected: the token goes to the model host only, never to the CDN it redirects to.
        request.add_unredirected_header("Authorization", f"Bearer {token}")
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    response: IO[bytes] = urllib.request.urlopen(request, timeout=timeout)
    return response


def _status(response: IO[bytes]) -> int:
    code = getattr(response, "status", None)
    return int(code) if code is not None else 200


def _is_permanent(exc: urllib.error.HTTPError) -> bool:
    return 400 <= exc.code < 500 and exc.code not in (408, 425, 429)


def _http_hint(entry: ModelEntry, exc: urllib.error.HTTPError) -> str:
    if exc.code in (401, 403):
        if entry.token_env:
            return (
                f"access denied: check that ${entry.token_env} is valid and has accepted the model's licence"
            )
        return (
            "access denied: the model may be gated; add `token_env: HF_TOKEN` to the entry and pass a token"
        )
    if exc.code == 404:
        return "not found: check the URL (repository, revision and path)"
    return f"HTTP {exc.code} {exc.reason}"


def _download_to(
    entry: ModelEntry,
    partial: Path,
    *,
    token: str | None,
    retries: int,
    timeout: float,
    backoff: float,
    sleep: Callable[[float], None],
) -> tuple[str, int]:
    """Fetch ``entry.url`` into ``partial`` (resuming it if present); return (sha256, size)."""
    attempt = 0
    while True:
        attempt += 1
        offset = partial.stat().st_size if partial.exists() else 0
        digest = hashlib.sha256()
        try:
            response = _open(entry.url, token, offset, timeout)
            with response:
                if offset and _status(response) != 206:
                    offset = 0  # the server ignored the range: start again
                length = getattr(response, "headers", {}).get("Content-Length")
                expected = offset + int(length) if length and length.isdigit() else None
                mode = "ab" if offset else "wb"
                if offset:
                    with partial.open("rb") as done:
                        while block := done.read(CHUNK):
                            digest.update(block)
                size = offset
                last_log = time.monotonic()
                with partial.open(mode) as out:
                    while block := response.read(CHUNK):
                        out.write(block)
                        digest.update(block)
                        size += len(block)
                        if time.monotonic() - last_log > 30:
                            log.info("%s: %.1f GiB so far", entry.relative_path, size / 2**30)
                            last_log = time.monotonic()
            if expected is not None and size < expected:
                # The connection ended early without an error: keep the partial file and resume.
                raise ConnectionError(f"connection closed after {size} of {expected} bytes")
            return digest.hexdigest(), size
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and offset:
                partial.unlink(missing_ok=True)  # range past the end: the partial file is stale
            elif _is_permanent(exc) or attempt > retries:
                raise DownloadError(
                    f"cannot download {entry.relative_path} from {entry.url}: {_http_hint(entry, exc)}"
                ) from exc
            cause: str = f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            if isinstance(exc, urllib.error.URLError) and entry.url.startswith("file:"):
                raise DownloadError(
                    f"cannot read {entry.url} for {entry.relative_path}: {exc.reason}"
                ) from exc
            if attempt > retries:
                raise DownloadError(
                    f"cannot download {entry.relative_path} from {entry.url} after {attempt} attempts: {exc}"
                ) from exc
            cause = str(exc)
        delay = backoff * 2 ** (attempt - 1)
        log.warning(
            "%s: attempt %d failed (%s); retrying in %.0f s", entry.relative_path, attempt, cause, delay
        )
        sleep(delay)


def _copy_verified(source: Path, target_tmp: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with source.open("rb") as src, target_tmp.open("wb") as dst:
        while block := src.read(CHUNK):
            dst.write(block)
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def fetch_model(
    entry: ModelEntry,
    dest_root: Path,
    *,
    cache_dir: Path | None = None,
    token: str | None = None,
    retries: int = 4,
    timeout: float = 60.0,
    backoff: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
) -> FetchResult:
    """Place ``entry`` at ``dest_root/<folder>/<name>``, verified by sha256.

    A file already there with the right hash is kept; one with a wrong hash is replaced. With
    ``cache_dir`` (e.g. a BuildKit cache mount) verified downloads are kept there by sha256 and
    reused by later builds. Raises :class:`ChecksumMismatch` or :class:`DownloadError`.
    """
    target = dest_root / entry.folder / entry.name
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_file():
        actual = sha256_file(target)
        if actual == entry.sha256:
            log.info("%s: already present, sha256 verified", entry.relative_path)
            return FetchResult(entry, target, "present", target.stat().st_size)
        log.warning("%s: present with sha256 %s, expected %s; fetching again", target, actual, entry.sha256)

    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    try:
        cached = cache_dir / entry.sha256 if cache_dir is not None else None
        if cached is not None and cached.is_file():
            actual, size = _copy_verified(cached, tmp)
            if actual == entry.sha256:
                os.replace(tmp, target)
                log.info("%s: copied from cache, sha256 verified", entry.relative_path)
                return FetchResult(entry, target, "cached", size)
            log.warning("cache file %s is corrupt (sha256 %s); discarding it", cached, actual)
            cached.unlink(missing_ok=True)

        if cached is not None:
            assert cache_dir is not None
            cache_dir.mkdir(parents=True, exist_ok=True)
            partial = cache_dir / f"{entry.sha256}.partial"
        else:
            partial = target.with_name(f".{target.name}.partial")
        log.info("%s: downloading %s", entry.relative_path, entry.url)
        actual, size = _download_to(
            entry, partial, token=token, retries=retries, timeout=timeout, backoff=backoff, sleep=sleep
        )
        if actual != entry.sha256:
            partial.unlink(missing_ok=True)
            raise ChecksumMismatch(entry, actual, size)
        if cached is not None:
            os.replace(partial, cached)
            _copy_verified(cached, tmp)
            os.replace(tmp, target)
        else:
            os.replace(partial, target)
        log.info("%s: downloaded %d bytes, sha256 verified", entry.relative_path, size)
        return FetchResult(entry, target, "downloaded", size)
    finally:
        tmp.unlink(missing_ok=True)


def fetch_models(
    entries: Iterable[ModelEntry],
    dest_root: Path,
    *,
    cache_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
    secrets_dir: Path | None = DEFAULT_SECRETS_DIR,
    retries: int = 4,
    timeout: float = 60.0,
    backoff: float = 2.0,
) -> list[FetchResult]:
    """Fetch every entry in order; the first failure raises and stops (a build must not half-succeed)."""
    environ = os.environ if env is None else env
    results = []
    for entry in entries:
        token = resolve_token(entry, environ, secrets_dir)
        results.append(
            fetch_model(
                entry,
                dest_root,
                cache_dir=cache_dir,
                token=token,
                retries=retries,
                timeout=timeout,
                backoff=backoff,
            )
        )
    return results


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: Message,
        newurl: str,
    ) -> urllib.request.Request | None:
        return None


def remote_sha256(url: str, token: str | None = None, timeout: float = 30.0) -> str | None:
    """The sha256 a Hugging Face style server announces for ``url`` without downloading it.

    Hugging Face answers ``HEAD .../resolve/...`` of a large (LFS) file with an ``X-Linked-Etag``
    header holding the file's sha256. Returns ``None`` when the server gives no sha256.
    """
    request = urllib.request.Request(url, method="HEAD", headers={"User-Agent": USER_AGENT})
    if token and _may_send_token(url):
        request.add_unredirected_header("Authorization", f"Bearer {token}")
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        response = opener.open(request, timeout=timeout)
        headers = response.headers
        response.close()
    except urllib.error.HTTPError as exc:
        if exc.code not in (301, 302, 303, 307, 308):
            raise DownloadError(f"HEAD {url}: HTTP {exc.code} {exc.reason}") from exc
        headers = exc.headers
    except (urllib.error.URLError, OSError) as exc:
        raise DownloadError(f"HEAD {url}: {exc}") from exc
    for name in ("X-Linked-Etag", "ETag"):
        value = (headers.get(name) or "").strip().strip('"').lower()
        if value.startswith("w/"):
            value = value[2:].strip('"')
        if len(value) == 64 and all(c in "0123456789abcdef" for c in value):
            return value
    return None


def url_sha256(url: str, token: str | None = None, timeout: float = 60.0) -> tuple[str, int]:
    """Stream ``url`` once, keeping nothing on disk, and return its (sha256, size)."""
    digest = hashlib.sha256()
    size = 0
    try:
        with _open(url, token, 0, timeout) as response:
            while block := response.read(CHUNK):
                digest.update(block)
                size += len(block)
    except urllib.error.HTTPError as exc:
        raise DownloadError(f"cannot download {url}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise DownloadError(f"cannot download {url}: {exc}") from exc
    return digest.hexdigest(), size
