"""A real S3-compatible server for tests: moto's server on a loopback port, as a subprocess.

Without ``auth`` it accepts any credentials. With ``auth`` it checks them like S3 does: only the
access keys of the IAM users made here exist, signatures are verified (a wrong secret answers
SignatureDoesNotMatch) and policies apply (``denied`` has none, so S3 answers AccessDenied).
Presigned URLs only work on a server without ``auth`` (moto cannot check them with it on).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
import requests

from tests.support.worker_process import free_port

REGION = "us-east-1"


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret: str


@dataclass
class MotoServer:
    url: str
    #: Credentials S3 accepts for every bucket.
    allowed: Credentials
    #: Credentials that exist but may do nothing (auth servers; None otherwise).
    denied: Credentials | None = None

    def client(self, credentials: Credentials | None = None, service: str = "s3") -> Any:
        credentials = credentials or self.allowed
        return boto3.session.Session().client(
            service,
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=credentials.access_key_id,
            aws_secret_access_key=credentials.secret,
        )

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)


def _wait_until_up(url: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            requests.get(url, timeout=1)
            return
        except requests.ConnectionError:
            if proc.poll() is not None:
                raise RuntimeError(f"moto's server exited with {proc.returncode}") from None
            if time.monotonic() > deadline:
                raise RuntimeError("moto's server did not start") from None
            time.sleep(0.05)


def _iam_user(iam: Any, name: str, policy: dict[str, Any] | None) -> Credentials:
    iam.create_user(UserName=name)
    if policy is not None:
        iam.put_user_policy(UserName=name, PolicyName=f"{name}-policy", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return Credentials(key["AccessKeyId"], key["SecretAccessKey"])


@contextmanager
def moto_server(*, auth: bool = False, buckets: Iterable[str] = ()) -> Iterator[MotoServer]:
    """Start moto's server, make ``buckets``, and stop the server afterwards."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url, proc)
        server = MotoServer(url, Credentials("AKIATESTTESTTEST0000", "moto-secret-must-not-be-logged"))
        if auth:
            # Authentication is still off: set up users and buckets, then turn it on.
            iam = server.client(service="iam")
            allow_all = {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
            }
            server.allowed = _iam_user(iam, "worker", allow_all)
            server.denied = _iam_user(iam, "outsider", None)
        for bucket in buckets:
            server.create_bucket(bucket)
        if auth:
            requests.post(f"{url}/moto-api/reset-auth", data=b"0", timeout=10).raise_for_status()
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
