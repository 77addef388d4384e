"""Manifest downloads are verified by sha256 (file:// and a local HTTP server on 127.0.0.1)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from comfy_serverless.provisioning import (
    ChecksumMismatch,
    DownloadError,
    ModelEntry,
    fetch_model,
    fetch_models,
)
from comfy_serverless.provisioning.download import remote_sha256, url_sha256

from .conftest import FileServer

PAYLOAD = b"safetensors-ish " * 5000  # 80 kB
SHA = hashlib.sha256(PAYLOAD).hexdigest()


def entry(url: str, sha: str = SHA, name: str = "model.safetensors", **kw: object) -> ModelEntry:
    return ModelEntry(name=name, url=url, folder="checkpoints", sha256=sha, **kw)  # type: ignore[arg-type]


def no_sleep(_: float) -> None:
    return None


def test_file_url_is_downloaded_and_verified(tmp_path: Path) -> None:
    source = tmp_path / "src.bin"
    source.write_bytes(PAYLOAD)
    result = fetch_model(entry(source.as_uri()), tmp_path / "models")
    assert result.status == "downloaded"
    assert result.path == tmp_path / "models" / "checkpoints" / "model.safetensors"
    assert result.path.read_bytes() == PAYLOAD
    assert [p.name for p in result.path.parent.iterdir()] == ["model.safetensors"]  # no temp files left


def test_sha256_mismatch_fails_and_installs_nothing(tmp_path: Path) -> None:
    source = tmp_path / "src.bin"
    source.write_bytes(PAYLOAD)
    wrong = "0" * 64
    with pytest.raises(ChecksumMismatch) as err:
        fetch_model(entry(source.as_uri(), sha=wrong), tmp_path / "models")
    assert SHA in str(err.value) and wrong in str(err.value)
    assert list((tmp_path / "models" / "checkpoints").iterdir()) == []


def test_present_file_with_right_hash_is_kept_wrong_one_replaced(tmp_path: Path) -> None:
    source = tmp_path / "src.bin"
    source.write_bytes(PAYLOAD)
    target = tmp_path / "models" / "checkpoints" / "model.safetensors"
    target.parent.mkdir(parents=True)
    target.write_bytes(PAYLOAD)
    assert fetch_model(entry(source.as_uri()), tmp_path / "models").status == "present"
    target.write_bytes(b"truncated")
    assert fetch_model(entry(source.as_uri()), tmp_path / "models").status == "downloaded"
    assert target.read_bytes() == PAYLOAD


def test_cache_dir_is_filled_then_reused_and_corrupt_cache_is_discarded(tmp_path: Path) -> None:
    source = tmp_path / "src.bin"
    source.write_bytes(PAYLOAD)
    cache = tmp_path / "cache"
    first = fetch_model(entry(source.as_uri()), tmp_path / "a", cache_dir=cache)
    assert first.status == "downloaded" and (cache / SHA).read_bytes() == PAYLOAD
    source.unlink()  # the next one can only come from the cache
    assert fetch_model(entry(source.as_uri()), tmp_path / "b", cache_dir=cache).status == "cached"
    (cache / SHA).write_bytes(b"bit rot")
    with pytest.raises(DownloadError):  # corrupt cache dropped, source gone: fails loudly
        fetch_model(entry(source.as_uri()), tmp_path / "c", cache_dir=cache)
    assert not (cache / SHA).exists()


def test_http_download_and_mismatch(tmp_path: Path, file_server: FileServer) -> None:
    file_server.files["/m.safetensors"] = PAYLOAD
    url = f"{file_server.base_url}/m.safetensors"
    assert fetch_model(entry(url), tmp_path).path.read_bytes() == PAYLOAD
    with pytest.raises(ChecksumMismatch):
        fetch_model(entry(url, sha="f" * 64, name="other.safetensors"), tmp_path)
    assert not (tmp_path / "checkpoints" / "other.safetensors").exists()


def test_interrupted_download_resumes_with_range(tmp_path: Path, file_server: FileServer) -> None:
    file_server.files["/big"] = PAYLOAD
    file_server.cut_after["/big"] = 30_000
    result = fetch_model(entry(f"{file_server.base_url}/big"), tmp_path, backoff=0, sleep=no_sleep)
    assert result.path.read_bytes() == PAYLOAD
    ranges = [h.get("Range") for method, path, h in file_server.requests if method == "GET"]
    assert ranges[0] is None and ranges[1] == "bytes=30000-"


def test_server_ignoring_range_restarts_cleanly(tmp_path: Path, file_server: FileServer) -> None:
    file_server.files["/big"] = PAYLOAD
    file_server.cut_after["/big"] = 30_000
    file_server.ignore_range = True
    result = fetch_model(entry(f"{file_server.base_url}/big"), tmp_path, backoff=0, sleep=no_sleep)
    assert result.path.read_bytes() == PAYLOAD


def test_404_is_permanent_with_a_hint(tmp_path: Path, file_server: FileServer) -> None:
    with pytest.raises(DownloadError, match="not found: check the URL"):
        fetch_model(entry(f"{file_server.base_url}/missing"), tmp_path, sleep=no_sleep)
    assert len(file_server.requests) == 1  # no retries on a 404


def test_gated_model_token_from_env_or_secret_file(tmp_path: Path, file_server: FileServer) -> None:
    file_server.files["/gated/m"] = PAYLOAD
    file_server.token = "s3cret"
    gated = entry(f"{file_server.base_url}/gated/m", token_env="HF_TOKEN")
    with pytest.raises(DownloadError, match=r"needs a token in \$HF_TOKEN"):
        fetch_models([gated], tmp_path / "a", env={}, secrets_dir=tmp_path / "none")
    fetch_models([gated], tmp_path / "b", env={"HF_TOKEN": "s3cret"}, secrets_dir=None)
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "HF_TOKEN").write_text("s3cret\n")
    results = fetch_models([gated], tmp_path / "c", env={}, secrets_dir=secrets)
    assert results[0].path.read_bytes() == PAYLOAD
    with pytest.raises(DownloadError, match="access denied"):
        fetch_models([gated], tmp_path / "d", env={"HF_TOKEN": "wrong"}, secrets_dir=None)


def test_token_is_not_forwarded_to_the_redirect_target(
    tmp_path: Path, file_server: FileServer, second_server: FileServer
) -> None:
    second_server.files["/blob"] = PAYLOAD
    file_server.redirects["/resolve/m"] = f"{second_server.base_url}/blob"
    fetch_models(
        [entry(f"{file_server.base_url}/resolve/m", token_env="HF_TOKEN")],
        tmp_path,
        env={"HF_TOKEN": "s3cret"},
        secrets_dir=None,
    )
    assert file_server.requests[0][2].get("Authorization") == "Bearer s3cret"
    assert "Authorization" not in second_server.requests[0][2]


def test_fetch_models_stops_at_first_failure(tmp_path: Path) -> None:
    good = tmp_path / "good.bin"
    good.write_bytes(PAYLOAD)
    entries = [
        entry((tmp_path / "absent.bin").as_uri(), name="first.safetensors"),
        entry(good.as_uri(), name="second.safetensors"),
    ]
    with pytest.raises(DownloadError, match=r"first\.safetensors"):
        fetch_models(entries, tmp_path / "models", env={})
    assert not (tmp_path / "models" / "checkpoints" / "second.safetensors").exists()


def test_remote_sha256_reads_linked_etag_without_following_the_redirect(
    file_server: FileServer, second_server: FileServer
) -> None:
    file_server.redirects["/resolve/m"] = f"{second_server.base_url}/blob"
    file_server.linked_etag["/resolve/m"] = SHA
    assert remote_sha256(f"{file_server.base_url}/resolve/m") == SHA
    assert second_server.requests == []
    file_server.files["/plain"] = b"x"
    assert remote_sha256(f"{file_server.base_url}/plain") is None


def test_url_sha256_streams(file_server: FileServer) -> None:
    file_server.files["/m"] = PAYLOAD
    assert url_sha256(f"{file_server.base_url}/m") == (SHA, len(PAYLOAD))
