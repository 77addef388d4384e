"""Upload outputs to an S3-compatible bucket and hand back presigned download URLs."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from ..errors import OutputError
from ..settings import Settings


class S3Storage:
    """One boto3 client for the worker's life; uploads run in threads so the event loop stays free."""

    def __init__(self, settings: Settings):
        if not settings.s3_bucket:
            raise ValueError("S3_BUCKET is not set")
        self.bucket = settings.s3_bucket
        self.prefix = settings.s3_prefix
        self.expiry = settings.s3_url_expiry
        self._client: Any = boto3.client(
            "s3",
            endpoint_url=settings.s3_endpoint_url,
            region_name=settings.s3_region,
            aws_access_key_id=settings.s3_access_key_id.get_secret_value()
            if settings.s3_access_key_id
            else None,
            aws_secret_access_key=(
                settings.s3_secret_access_key.get_secret_value() if settings.s3_secret_access_key else None
            ),
            config=Config(signature_version="s3v4", retries={"max_attempts": 3, "mode": "standard"}),
        )

    def key_for(self, job_id: str, name: str) -> str:
        return f"{self.prefix}{job_id}/{name}"

    def _put(self, key: str, mime: str, path: Path | None, data: bytes | None) -> str:
        extra = {"ContentType": mime}
        if path is not None:
            self._client.upload_file(str(path), self.bucket, key, ExtraArgs=extra)
        else:
            self._client.put_object(Bucket=self.bucket, Key=key, Body=data or b"", **extra)
        url: str = self._client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=self.expiry
        )
        return url

    async def put(
        self, key: str, mime: str, *, label: str, path: Path | None = None, data: bytes | None = None
    ) -> str:
        """Upload a file (streamed from disk when ``path`` is given) and return a download URL.
        ``label`` names the file in errors, e.g. "output x.png of node 9"."""
        try:
            return await asyncio.to_thread(self._put, key, mime, path, data)
        except (BotoCoreError, ClientError, OSError) as exc:
            raise OutputError(
                f"uploading {label} to bucket {self.bucket} failed: {exc}",
                details={"bucket": self.bucket, "key": key},
            ) from exc
