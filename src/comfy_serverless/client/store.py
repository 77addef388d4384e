"""Where a client records the jobs it submitted, so that a caller that restarts loses none of them.

A record holds the endpoint, the input's digest, the job id once RunPod gave one, the state, timestamps,
and the job's final ``/status`` answer (its result, or its error) once known. It never holds the input
itself (inputs may carry keys and large files).

Rules, the same for every backend (see :func:`blocks_resubmission`):

- ``claim`` is atomic across threads and processes: of two callers submitting identical input, one
  gets a new record and submits; the other gets the existing record.
- An existing record blocks a new submission of the same input on the same endpoint while it is
  pending (``SUBMITTING``, ``UNCERTAIN``, ``IN_QUEUE``, ``IN_PROGRESS``) or ``COMPLETED``; a ``FAILED``,
  ``CANCELLED``, ``TIMED_OUT`` or ``EXPIRED`` one does not. ``force`` always makes a new record.
- ``SUBMITTING`` is written before the request leaves. A record still ``SUBMITTING`` later means the
  process stopped mid-submission: the job may or may not exist, so the input stays blocked until the
  caller forces it (as for ``UNCERTAIN``, a submission whose answer was lost).

Backends: :class:`SQLiteJobStore` (the default: one file, WAL, safe for several processes; the asyncio
client calls it from a thread through :class:`ThreadedJobStore`), :class:`RedisJobStore` and
:class:`AsyncRedisJobStore` (``redis://`` URLs; for callers spread over several machines).
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .models import COMPLETED, TERMINAL_STATES, JobStatus

if TYPE_CHECKING:
    import redis
    import redis.asyncio

SUBMITTING = "SUBMITTING"
UNCERTAIN = "UNCERTAIN"
#: The job's result is gone (RunPod keeps it 30 minutes) and the store never saw it.
EXPIRED = "EXPIRED"

#: States in which a record is done with (no more waiting).
FINISHED_STATES = TERMINAL_STATES | {EXPIRED}


def blocks_resubmission(record: JobRecord) -> bool:
    """Whether this record stops identical input from being submitted again (without ``force``)."""
    return record.state == COMPLETED or record.state not in FINISHED_STATES


@dataclass(frozen=True)
class JobRecord:
    """One submission. Times are Unix epoch seconds; ``wait_s`` is how long its caller meant to wait;
    ``final`` is the job's last ``/status`` answer once it ended; ``error`` a sentence for a failure or
    an uncertain submission."""

    record_id: str
    endpoint: str
    input_digest: str
    state: str
    created_at: float
    updated_at: float
    job_id: str | None = None
    submitted_at: float | None = None
    finished_at: float | None = None
    wait_s: float | None = None
    final: dict[str, Any] | None = None
    error: str | None = None

    @classmethod
    def new(cls, endpoint: str, digest: str, *, wait_s: float | None = None) -> JobRecord:
        now = time.time()
        return cls(uuid.uuid4().hex, endpoint, digest, SUBMITTING, now, now, wait_s=wait_s)

    @property
    def pending(self) -> bool:
        return self.state not in FINISHED_STATES

    def moved_to(self, status: JobStatus) -> JobRecord:
        """This record after the job reached ``status``."""
        now = time.time()
        if not status.done:
            return replace(self, state=status.status, updated_at=now)
        error = status.error if status.status != COMPLETED else None
        return replace(
            self, state=status.status, final=dict(status.raw), error=error, finished_at=now, updated_at=now
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> JobRecord:
        return cls(**json.loads(text))


@dataclass(frozen=True)
class Claim:
    """The outcome of :meth:`JobStore.claim`: a new ``SUBMITTING`` record to submit with, or
    (``existing``) the earlier record that blocks it."""

    record: JobRecord
    existing: bool


def decide_claim(
    current: JobRecord | None, endpoint: str, digest: str, *, force: bool, wait_s: float | None
) -> Claim:
    if current is not None and not force and blocks_resubmission(current):
        return Claim(current, existing=True)
    return Claim(JobRecord.new(endpoint, digest, wait_s=wait_s), existing=False)


class JobStore(Protocol):
    """A job store used by the synchronous client."""

    def claim(self, endpoint: str, digest: str, force: bool, wait_s: float | None) -> Claim: ...
    def save(self, record: JobRecord) -> None: ...
    def delete(self, record_id: str) -> None: ...
    def get(self, record_id: str) -> JobRecord | None: ...
    def find_job(self, endpoint: str, job_id: str) -> JobRecord | None: ...
    def find_input(self, endpoint: str, digest: str) -> JobRecord | None: ...
    def pending(self, endpoint: str | None = None) -> list[JobRecord]: ...
    def close(self) -> None: ...


class AsyncJobStore(Protocol):
    """The same, for the asyncio client."""

    async def claim(self, endpoint: str, digest: str, force: bool, wait_s: float | None) -> Claim: ...
    async def save(self, record: JobRecord) -> None: ...
    async def delete(self, record_id: str) -> None: ...
    async def get(self, record_id: str) -> JobRecord | None: ...
    async def find_job(self, endpoint: str, job_id: str) -> JobRecord | None: ...
    async def find_input(self, endpoint: str, digest: str) -> JobRecord | None: ...
    async def pending(self, endpoint: str | None = None) -> list[JobRecord]: ...
    async def close(self) -> None: ...


# --- SQLite ----------------------------------------------------------------------------------------

_COLUMNS = (
    "record_id",
    "endpoint",
    "input_digest",
    "state",
    "created_at",
    "updated_at",
    "job_id",
    "submitted_at",
    "finished_at",
    "wait_s",
    "final",
    "error",
)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    record_id TEXT PRIMARY KEY,
    endpoint TEXT NOT NULL,
    input_digest TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    job_id TEXT,
    submitted_at REAL,
    finished_at REAL,
    wait_s REAL,
    final TEXT,
    error TEXT
);
CREATE INDEX IF NOT EXISTS jobs_by_input ON jobs (endpoint, input_digest, created_at);
CREATE INDEX IF NOT EXISTS jobs_by_job ON jobs (endpoint, job_id);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state);
"""
_FINISHED_SQL = ", ".join(f"'{state}'" for state in sorted(FINISHED_STATES))


def _row_record(row: tuple[Any, ...]) -> JobRecord:
    values = dict(zip(_COLUMNS, row, strict=True))
    values["final"] = json.loads(values["final"]) if values["final"] else None
    return JobRecord(**values)


class SQLiteJobStore:
    """A job store in one SQLite file. WAL mode lets readers and one writer work at once; a claim runs
    in an IMMEDIATE transaction, so two processes claiming the same input are serialised by SQLite's
    lock. One connection per store, shared by its threads under a lock."""

    def __init__(self, path: str | Path, *, busy_timeout: float = 30.0):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            self.path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        with self._lock:
            self._db.executescript(_SCHEMA)

    def __repr__(self) -> str:
        return f"SQLiteJobStore({str(self.path)!r})"

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _one(self, sql: str, args: tuple[Any, ...]) -> JobRecord | None:
        with self._lock:
            row = self._db.execute(sql, args).fetchone()
        return _row_record(row) if row else None

    def _latest_for_input(self, db: sqlite3.Connection, endpoint: str, digest: str) -> JobRecord | None:
        row = db.execute(
            f"SELECT {', '.join(_COLUMNS)} FROM jobs WHERE endpoint = ? AND input_digest = ? "
            "ORDER BY created_at DESC, rowid DESC LIMIT 1",
            (endpoint, digest),
        ).fetchone()
        return _row_record(row) if row else None

    def claim(self, endpoint: str, digest: str, force: bool = False, wait_s: float | None = None) -> Claim:
        with self._transaction() as db:
            claim = decide_claim(
                self._latest_for_input(db, endpoint, digest), endpoint, digest, force=force, wait_s=wait_s
            )
            if not claim.existing:
                self._write(db, claim.record)
        return claim

    @staticmethod
    def _write(db: sqlite3.Connection, record: JobRecord) -> None:
        values = asdict(record)
        values["final"] = json.dumps(record.final) if record.final is not None else None
        db.execute(
            f"INSERT OR REPLACE INTO jobs ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
            tuple(values[column] for column in _COLUMNS),
        )

    def save(self, record: JobRecord) -> None:
        with self._transaction() as db:
            self._write(db, record)

    def delete(self, record_id: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM jobs WHERE record_id = ?", (record_id,))

    def get(self, record_id: str) -> JobRecord | None:
        return self._one(f"SELECT {', '.join(_COLUMNS)} FROM jobs WHERE record_id = ?", (record_id,))

    def find_job(self, endpoint: str, job_id: str) -> JobRecord | None:
        return self._one(
            f"SELECT {', '.join(_COLUMNS)} FROM jobs WHERE endpoint = ? AND job_id = ? "
            "ORDER BY created_at DESC LIMIT 1",
            (endpoint, job_id),
        )

    def find_input(self, endpoint: str, digest: str) -> JobRecord | None:
        with self._lock:
            return self._latest_for_input(self._db, endpoint, digest)

    def pending(self, endpoint: str | None = None) -> list[JobRecord]:
        sql = f"SELECT {', '.join(_COLUMNS)} FROM jobs WHERE state NOT IN ({_FINISHED_SQL})"
        args: tuple[Any, ...] = ()
        if endpoint is not None:
            sql += " AND endpoint = ?"
            args = (endpoint,)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY created_at", args).fetchall()
        return [_row_record(row) for row in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()


class ThreadedJobStore:
    """An :class:`AsyncJobStore` over a synchronous store, each call in a thread (SQLite for the
    asyncio client)."""

    def __init__(self, store: JobStore):
        self.store = store

    def __repr__(self) -> str:
        return f"ThreadedJobStore({self.store!r})"

    async def claim(self, endpoint: str, digest: str, force: bool, wait_s: float | None) -> Claim:
        return await asyncio.to_thread(self.store.claim, endpoint, digest, force, wait_s)

    async def save(self, record: JobRecord) -> None:
        await asyncio.to_thread(self.store.save, record)

    async def delete(self, record_id: str) -> None:
        await asyncio.to_thread(self.store.delete, record_id)

    async def get(self, record_id: str) -> JobRecord | None:
        return await asyncio.to_thread(self.store.get, record_id)

    async def find_job(self, endpoint: str, job_id: str) -> JobRecord | None:
        return await asyncio.to_thread(self.store.find_job, endpoint, job_id)

    async def find_input(self, endpoint: str, digest: str) -> JobRecord | None:
        return await asyncio.to_thread(self.store.find_input, endpoint, digest)

    async def pending(self, endpoint: str | None = None) -> list[JobRecord]:
        return await asyncio.to_thread(self.store.pending, endpoint)

    async def close(self) -> None:
        await asyncio.to_thread(self.store.close)


# --- Redis -----------------------------------------------------------------------------------------


class RedisKeys:
    """The keys of one namespace: ``rec:<record id>`` holds a record's JSON; ``input:<endpoint>:<digest>``
    the id of the input's latest record; ``job:<endpoint>:<job id>`` a job's record id; ``pending`` the
    set of pending record ids. Endpoints appear as a short hash of their URL."""

    def __init__(self, namespace: str = "comfy-serverless:jobs"):
        self.namespace = namespace.rstrip(":")

    @staticmethod
    def _endpoint(endpoint: str) -> str:
        return hashlib.sha256(endpoint.encode()).hexdigest()[:16]

    def record(self, record_id: str) -> str:
        return f"{self.namespace}:rec:{record_id}"

    def input(self, endpoint: str, digest: str) -> str:
        return f"{self.namespace}:input:{self._endpoint(endpoint)}:{digest}"

    def job(self, endpoint: str, job_id: str) -> str:
        return f"{self.namespace}:job:{self._endpoint(endpoint)}:{job_id}"

    @property
    def pending(self) -> str:
        return f"{self.namespace}:pending"


def _redis() -> Any:
    """The ``redis`` package, imported on first use: only the Redis stores need it."""
    try:
        import redis
        import redis.asyncio
    except ImportError:
        raise ImportError("the Redis job store needs the redis package: pip install 'redis>=5'") from None
    return redis


def _queue_save(keys: RedisKeys, pipe: Any, record: JobRecord) -> None:
    """Add a record's writes to a pipeline (sync or asyncio: both queue commands without I/O)."""
    pipe.set(keys.record(record.record_id), record.to_json())
    if record.job_id:
        pipe.set(keys.job(record.endpoint, record.job_id), record.record_id)
    if record.pending:
        pipe.sadd(keys.pending, record.record_id)
    else:
        pipe.srem(keys.pending, record.record_id)


def _decode(value: bytes | str | None) -> JobRecord | None:
    return JobRecord.from_json(value) if value else None


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


class RedisJobStore:
    """A job store in Redis. ``claim`` is a WATCH/MULTI transaction on the input's key, so concurrent
    claims of one input, from any number of processes or machines, leave exactly one new record."""

    def __init__(self, client: redis.Redis, *, namespace: str = "comfy-serverless:jobs"):
        self.redis = client
        self.keys = RedisKeys(namespace)

    @classmethod
    def from_url(cls, url: str, *, namespace: str = "comfy-serverless:jobs") -> RedisJobStore:
        return cls(_redis().Redis.from_url(url), namespace=namespace)

    def __repr__(self) -> str:
        return f"RedisJobStore(namespace={self.keys.namespace!r})"

    def claim(self, endpoint: str, digest: str, force: bool = False, wait_s: float | None = None) -> Claim:
        redis = _redis()

        key = self.keys.input(endpoint, digest)
        with self.redis.pipeline() as raw_pipe:
            pipe: Any = raw_pipe
            while True:
                try:
                    pipe.watch(key)
                    current_id = _text(pipe.get(key))
                    current = _decode(pipe.get(self.keys.record(current_id))) if current_id else None
                    claim = decide_claim(current, endpoint, digest, force=force, wait_s=wait_s)
                    if claim.existing:
                        pipe.unwatch()
                        return claim
                    pipe.multi()
                    pipe.set(key, claim.record.record_id)
                    _queue_save(self.keys, pipe, claim.record)
                    pipe.execute()
                    return claim
                except redis.WatchError:
                    continue

    def save(self, record: JobRecord) -> None:
        with self.redis.pipeline() as raw_pipe:
            pipe: Any = raw_pipe
            _queue_save(self.keys, pipe, record)
            pipe.execute()

    def delete(self, record_id: str) -> None:
        redis = _redis()

        record = self.get(record_id)
        if record is None:
            return
        with self.redis.pipeline() as raw_pipe:
            pipe: Any = raw_pipe
            pipe.delete(self.keys.record(record_id))
            pipe.srem(self.keys.pending, record_id)
            if record.job_id:
                pipe.delete(self.keys.job(record.endpoint, record.job_id))
            pipe.execute()
        # The input's pointer goes only if it still names this record.
        key = self.keys.input(record.endpoint, record.input_digest)
        with self.redis.pipeline() as raw_pipe:
            pipe = raw_pipe
            try:
                pipe.watch(key)
                if _text(pipe.get(key)) == record_id:
                    pipe.multi()
                    pipe.delete(key)
                    pipe.execute()
            except redis.WatchError:  # a concurrent claim replaced it: nothing to remove
                pass

    def get(self, record_id: str) -> JobRecord | None:
        return _decode(self.redis.get(self.keys.record(record_id)))

    def find_job(self, endpoint: str, job_id: str) -> JobRecord | None:
        record_id = _text(self.redis.get(self.keys.job(endpoint, job_id)))
        return self.get(record_id) if record_id else None

    def find_input(self, endpoint: str, digest: str) -> JobRecord | None:
        record_id = _text(self.redis.get(self.keys.input(endpoint, digest)))
        return self.get(record_id) if record_id else None

    def pending(self, endpoint: str | None = None) -> list[JobRecord]:
        ids = sorted(_text(value) or "" for value in self.redis.smembers(self.keys.pending))
        values = self.redis.mget([self.keys.record(record_id) for record_id in ids]) if ids else []
        return _pending_of(values, endpoint)

    def close(self) -> None:
        self.redis.close()


class AsyncRedisJobStore:
    """:class:`RedisJobStore` for the asyncio client (``redis.asyncio``), with the same keys and rules."""

    def __init__(self, client: redis.asyncio.Redis, *, namespace: str = "comfy-serverless:jobs"):
        self.redis = client
        self.keys = RedisKeys(namespace)

    @classmethod
    def from_url(cls, url: str, *, namespace: str = "comfy-serverless:jobs") -> AsyncRedisJobStore:
        return cls(_redis().asyncio.Redis.from_url(url), namespace=namespace)

    def __repr__(self) -> str:
        return f"AsyncRedisJobStore(namespace={self.keys.namespace!r})"

    async def claim(
        self, endpoint: str, digest: str, force: bool = False, wait_s: float | None = None
    ) -> Claim:
        redis = _redis()

        key = self.keys.input(endpoint, digest)
        async with self.redis.pipeline() as raw_pipe:
            pipe: Any = raw_pipe
            while True:
                try:
                    await pipe.watch(key)
                    current_id = _text(await pipe.get(key))
                    current = _decode(await pipe.get(self.keys.record(current_id))) if current_id else None
                    claim = decide_claim(current, endpoint, digest, force=force, wait_s=wait_s)
                    if claim.existing:
                        await pipe.unwatch()
                        return claim
                    pipe.multi()
                    pipe.set(key, claim.record.record_id)
                    _queue_save(self.keys, pipe, claim.record)
                    await pipe.execute()
                    return claim
                except redis.WatchError:
                    continue

    async def save(self, record: JobRecord) -> None:
        async with self.redis.pipeline() as raw_pipe:
            pipe: Any = raw_pipe
            _queue_save(self.keys, pipe, record)
            await pipe.execute()

    async def delete(self, record_id: str) -> None:
        redis = _redis()

        record = await self.get(record_id)
        if record is None:
            return
        async with self.redis.pipeline() as raw_pipe:
            pipe: Any = raw_pipe
            pipe.delete(self.keys.record(record_id))
            pipe.srem(self.keys.pending, record_id)
            if record.job_id:
                pipe.delete(self.keys.job(record.endpoint, record.job_id))
            await pipe.execute()
        key = self.keys.input(record.endpoint, record.input_digest)
        async with self.redis.pipeline() as raw_pipe:
            pipe = raw_pipe
            try:
                await pipe.watch(key)
                if _text(await pipe.get(key)) == record_id:
                    pipe.multi()
                    pipe.delete(key)
                    await pipe.execute()
            except redis.WatchError:
                pass

    async def get(self, record_id: str) -> JobRecord | None:
        return _decode(await self.redis.get(self.keys.record(record_id)))

    async def find_job(self, endpoint: str, job_id: str) -> JobRecord | None:
        record_id = _text(await self.redis.get(self.keys.job(endpoint, job_id)))
        return await self.get(record_id) if record_id else None

    async def find_input(self, endpoint: str, digest: str) -> JobRecord | None:
        record_id = _text(await self.redis.get(self.keys.input(endpoint, digest)))
        return await self.get(record_id) if record_id else None

    async def pending(self, endpoint: str | None = None) -> list[JobRecord]:
        ids = sorted(_text(value) or "" for value in await self.redis.smembers(self.keys.pending))
        values = await self.redis.mget([self.keys.record(record_id) for record_id in ids]) if ids else []
        return _pending_of(values, endpoint)

    async def close(self) -> None:
        await self.redis.aclose()


def _pending_of(values: list[Any], endpoint: str | None) -> list[JobRecord]:
    records = [record for value in values if (record := _decode(value)) is not None]
    chosen = [r for r in records if r.pending and (endpoint is None or r.endpoint == endpoint)]
    return sorted(chosen, key=lambda record: record.created_at)


# --- opening ---------------------------------------------------------------------------------------

_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def open_store(spec: JobStore | str | Path) -> JobStore:
    """A synchronous store: a store object as is, a ``redis://`` URL, or a SQLite file path (also as
    ``sqlite:///path``)."""
    if not isinstance(spec, str | Path):
        return spec
    text = str(spec)
    if text.startswith(_REDIS_SCHEMES):
        return RedisJobStore.from_url(text)
    return SQLiteJobStore(text.removeprefix("sqlite://"))


def open_async_store(spec: AsyncJobStore | JobStore | str | Path) -> AsyncJobStore:
    """An asyncio store: an async store as is, a sync store wrapped in threads, a ``redis://`` URL
    (``redis.asyncio``), or a SQLite file path."""
    if isinstance(spec, str | Path):
        text = str(spec)
        if text.startswith(_REDIS_SCHEMES):
            return AsyncRedisJobStore.from_url(text)
        return ThreadedJobStore(SQLiteJobStore(text.removeprefix("sqlite://")))
    if inspect.iscoroutinefunction(getattr(spec, "claim", None)):
        return spec  # type: ignore[return-value]
    return ThreadedJobStore(spec)  # type: ignore[arg-type]


__all__ = [
    "EXPIRED",
    "FINISHED_STATES",
    "SUBMITTING",
    "UNCERTAIN",
    "AsyncJobStore",
    "AsyncRedisJobStore",
    "Claim",
    "JobRecord",
    "JobStore",
    "RedisJobStore",
    "SQLiteJobStore",
    "ThreadedJobStore",
    "blocks_resubmission",
    "open_async_store",
    "open_store",
]
