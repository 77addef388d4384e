"""Every knob of the worker, read once from the environment into one typed object.

Each field's environment variable is its upper-case name (``comfyui_dir`` -> ``COMFYUI_DIR``).
The README's configuration table is generated from this class (see ``settings_table``).
"""

from __future__ import annotations

import shlex
import sys
import tempfile
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The repository's ``workflows/`` folder (the images copy it to /opt/comfy-serverless/workflows and
#: point BUILTIN_TEMPLATES_DIR there).
SHIPPED_TEMPLATES = Path(__file__).resolve().parents[2] / "workflows"


class OutputFormat(StrEnum):
    """Shape of a successful job's result."""

    NATIVE = "native"
    WORKER_COMFYUI = "worker-comfyui"


class DeliveryMode(StrEnum):
    """How output files leave the worker."""

    INLINE = "inline"
    S3 = "s3"
    AUTO = "auto"


class Settings(BaseSettings):
    """Worker configuration. Defaults suit the container image; override through the environment."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    # --- ComfyUI process -------------------------------------------------------------------------
    comfyui_dir: Annotated[
        Path | None, Field(description="ComfyUI checkout holding main.py; the worker starts it as a child.")
    ] = None
    comfyui_python: Annotated[
        str, Field(description="Interpreter that runs ComfyUI. Default: the worker's own.")
    ] = sys.executable
    comfyui_port: Annotated[int, Field(ge=1, le=65535, description="Loopback port ComfyUI listens on.")] = (
        8188
    )
    comfyui_args: Annotated[
        str, Field(description="Extra ComfyUI arguments, shell-quoted, e.g. `--cpu --lowvram`.")
    ] = ""
    comfyui_url: Annotated[
        str | None,
        Field(description="Attach to an already running ComfyUI at this URL and manage no process."),
    ] = None
    comfyui_boot_timeout: Annotated[
        float, Field(gt=0, description="Seconds a job waits for ComfyUI to become ready.")
    ] = 600.0
    comfyui_max_restarts: Annotated[
        int,
        Field(
            ge=0,
            description="Consecutive failed (re)starts after which the worker asks RunPod to replace it.",
        ),
    ] = 3
    comfyui_interrupt_grace: Annotated[
        float,
        Field(
            gt=0,
            description="Seconds an interrupted prompt may take to stop before ComfyUI is restarted.",
        ),
    ] = 30.0
    comfyui_request_timeout: Annotated[
        float, Field(gt=0, description="Seconds one HTTP request to ComfyUI may take.")
    ] = 60.0
    comfyui_enable_assets: Annotated[
        bool,
        Field(
            description="Keep newer ComfyUI's assets system (its database, folder scans and /api/assets). "
            "Off: the worker passes --disable-assets to versions that know the flag.",
        ),
    ] = False
    comfyui_extra_model_paths: Annotated[
        Path | None,
        Field(description="extra_model_paths.yaml handed to ComfyUI with --extra-model-paths-config."),
    ] = None
    runpod_volume_path: Annotated[
        Path,
        Field(description="Where RunPod mounts the network volume; its models are checked at start."),
    ] = Path("/runpod-volume")
    worker_data_dir: Annotated[
        Path,
        Field(description="Folder holding ComfyUI's input, output and temp folders, owned by the worker."),
    ] = Path(tempfile.gettempdir()) / "comfy-serverless"
    comfyui_input_dir: Annotated[
        Path | None, Field(description="Attach mode: ComfyUI's input folder, so job inputs can be removed.")
    ] = None
    comfyui_output_dir: Annotated[
        Path | None,
        Field(description="Attach mode: ComfyUI's output folder, read directly and cleaned after each job."),
    ] = None
    comfyui_temp_dir: Annotated[
        Path | None, Field(description="Attach mode: ComfyUI's temp folder, cleaned after each job.")
    ] = None

    # --- Jobs ------------------------------------------------------------------------------------
    job_timeout_default: Annotated[
        float, Field(gt=0, description="Seconds a job may run when it does not ask for a timeout.")
    ] = 600.0
    job_timeout_max: Annotated[float, Field(gt=0, description="Largest `timeout` a job may ask for.")] = (
        3600.0
    )
    max_input_bytes: Annotated[
        int, Field(gt=0, description="Largest decoded input file accepted, in bytes.")
    ] = 100 * 1024 * 1024
    allow_private_input_urls: Annotated[
        bool,
        Field(
            description="Let input URLs reach loopback and private networks (off: the SSRF guard refuses "
            "them in every address spelling).",
        ),
    ] = False
    input_url_allowed_hosts: Annotated[
        str,
        Field(
            description="Comma-separated host names, IP addresses and CIDR networks (e.g. "
            "`files.internal,10.0.0.0/8`) that input URLs may reach although private; everything else "
            "private stays refused.",
        ),
    ] = ""
    input_download_timeout: Annotated[
        float,
        Field(gt=0, description="Seconds one input download (URL or `s3://`, redirects included) may take."),
    ] = 120.0
    input_download_concurrency: Annotated[
        int, Field(ge=1, le=64, description="Input files a job downloads or decodes at the same time.")
    ] = 4
    progress_interval: Annotated[
        float, Field(ge=0, description="Minimum seconds between two progress reports to RunPod.")
    ] = 0.5
    concurrency: Annotated[
        int,
        Field(
            ge=1,
            le=64,
            description="Jobs one worker takes at the same time (RunPod's `concurrency_modifier`). ComfyUI "
            "runs one prompt at a time; above 1 the next job downloads its inputs while the current one "
            "runs, and the last one's outputs are encoded or uploaded while the next one runs.",
        ),
    ] = 1
    warmup: Annotated[
        str | None,
        Field(
            description="Run once after ComfyUI's first boot so the first real job finds its models loaded: "
            "a template name, a JSON file (a job input, or a workflow in API or editor format), or inline "
            "job-input JSON. Its outputs are discarded; the start-up summary reports its duration; a "
            "failure is logged and the worker still takes jobs.",
        ),
    ] = None
    output_format: Annotated[
        OutputFormat,
        Field(description="`native`, or `worker-comfyui` for that worker's exact result shape."),
    ] = OutputFormat.NATIVE
    comfy_org_api_key: Annotated[
        SecretStr | None,
        Field(description="Comfy.org key for API nodes, used when a job brings none. Never logged."),
    ] = None
    builtin_templates_dir: Annotated[
        Path,
        Field(
            description="Folder of the templates shipped with the worker (`workflows/` of this repository)."
        ),
    ] = SHIPPED_TEMPLATES
    templates_dir: Annotated[
        Path | None,
        Field(
            description="A folder of your own templates (`<name>.yaml` + its workflow), e.g. on the network "
            "volume; a template here replaces a shipped one of the same name.",
        ),
    ] = None

    # --- Delivery --------------------------------------------------------------------------------
    delivery: Annotated[
        DeliveryMode,
        Field(description="`inline` base64, `s3` upload, or `auto`: inline unless the result is too large."),
    ] = DeliveryMode.AUTO
    max_inline_bytes: Annotated[
        int,
        Field(gt=0, description="Largest inline result (base64 bytes) before `auto` switches to S3."),
    ] = 18 * 1024 * 1024
    s3_endpoint_url: Annotated[str | None, Field(description="S3-compatible endpoint; unset means AWS.")] = (
        None
    )
    s3_bucket: Annotated[str | None, Field(description="Bucket receiving uploaded outputs.")] = None
    s3_region: Annotated[str | None, Field(description="Bucket region.")] = None
    s3_access_key_id: Annotated[SecretStr | None, Field(description="S3 access key id.")] = None
    s3_secret_access_key: Annotated[SecretStr | None, Field(description="S3 secret key.")] = None
    s3_prefix: Annotated[str, Field(description="Key prefix for uploads; the job id follows it.")] = (
        "outputs/"
    )
    s3_url_expiry: Annotated[
        int, Field(gt=0, description="Seconds the presigned download URLs stay valid.")
    ] = 7 * 24 * 3600
    s3_public_base_url: Annotated[
        str | None,
        Field(
            description="Public address of S3_BUCKET (a CDN or a public bucket), e.g. "
            "`https://cdn.example.com`: uploads are reported as `<this>/<key>` instead of presigned URLs. "
            "Not used for a job's own `s3Config`.",
        ),
    ] = None
    output_keep_metadata: Annotated[
        bool,
        Field(
            description="Keep the workflow ComfyUI embeds in images (PNG text chunks) when `output_format` "
            "converts them; off strips it. Unconverted outputs are returned as ComfyUI wrote them.",
        ),
    ] = False

    output_archive_dir: Annotated[
        Path | None,
        Field(
            description="Also keep a copy of every delivered output in `<dir>/<job id>/` (local runs, "
            "Docker Compose). Unset on RunPod: the worker keeps nothing.",
        ),
    ] = None

    # --- HTTP service ----------------------------------------------------------------------------
    worker_mode: Annotated[
        Literal["runpod", "http"],
        Field(
            description="What the container runs: `runpod`, the worker on RunPod's job queue; or `http`, "
            "the HTTP service (`comfy-serverless serve`) on 0.0.0.0:HTTP_PORT, which then needs "
            "HTTP_TOKEN or HTTP_ALLOW_PUBLIC.",
        ),
    ] = "runpod"
    http_host: Annotated[
        str,
        Field(
            description="Address `comfy-serverless serve` listens on; one other than loopback needs "
            "HTTP_TOKEN or HTTP_ALLOW_PUBLIC.",
        ),
    ] = "127.0.0.1"
    http_port: Annotated[
        int, Field(ge=1, le=65535, description="Port `comfy-serverless serve` listens on.")
    ] = 8000
    http_token: Annotated[
        SecretStr | None,
        Field(
            description="Bearer token the HTTP service requires on every route but /ready and the docs "
            "(`Authorization: Bearer <token>`), compared in constant time. Never logged.",
        ),
    ] = None
    http_allow_public: Annotated[
        bool,
        Field(
            description="Let the HTTP service listen on a non-loopback address without HTTP_TOKEN (behind "
            "an authenticating proxy of your own).",
        ),
    ] = False
    http_queue_size: Annotated[
        int,
        Field(
            ge=1,
            description="Jobs the HTTP service holds waiting beside the CONCURRENCY running ones; past it "
            "/run and /runsync answer 429 with Retry-After.",
        ),
    ] = 100
    http_result_ttl: Annotated[
        float,
        Field(
            gt=0,
            description="Seconds the HTTP service keeps a finished job (status, result and its result "
            "file); then /status answers 404.",
        ),
    ] = 1800.0
    http_shutdown_grace: Annotated[
        float,
        Field(
            ge=0,
            description="Seconds running jobs get to finish after SIGTERM before they are cancelled; "
            "queued jobs are cancelled at once and new ones refused (503).",
        ),
    ] = 30.0
    webhook_secret: Annotated[
        SecretStr | None,
        Field(
            description="Key of the HMAC-SHA256 signature on webhook POSTs "
            "(`X-Comfy-Serverless-Signature`); unset, webhooks are sent unsigned. Never logged.",
        ),
    ] = None
    webhook_attempts: Annotated[
        int,
        Field(
            ge=1,
            le=20,
            description="Attempts to deliver a job's webhook, 1 s apart and doubling; a 2xx answer ends "
            "them, and so does a 4xx other than 408 and 429.",
        ),
    ] = 5

    # --- Logging ---------------------------------------------------------------------------------
    log_level: Annotated[str, Field(description="Worker log level (DEBUG, INFO, WARNING, ERROR).")] = "INFO"

    @field_validator("comfyui_url")
    @classmethod
    def _strip_trailing_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else value

    @field_validator("input_url_allowed_hosts")
    @classmethod
    def _valid_hosts(cls, value: str) -> str:
        from .media.inputs import AllowedHosts  # aiohttp: only when the list is given

        if value.strip():
            AllowedHosts(value)  # raises ValueError naming the bad entry
        return value

    @field_validator("s3_public_base_url")
    @classmethod
    def _http_base(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError(f"unknown log level {value!r}")
        return level

    @model_validator(mode="after")
    def _timeouts_consistent(self) -> Settings:
        if self.job_timeout_default > self.job_timeout_max:
            raise ValueError("JOB_TIMEOUT_DEFAULT must not exceed JOB_TIMEOUT_MAX")
        return self

    @property
    def attach_mode(self) -> bool:
        """True when the worker uses an existing ComfyUI instead of starting one."""
        return self.comfyui_url is not None

    @property
    def base_url(self) -> str:
        """HTTP base URL of ComfyUI."""
        return self.comfyui_url or f"http://127.0.0.1:{self.comfyui_port}"

    @property
    def extra_comfyui_args(self) -> list[str]:
        """COMFYUI_ARGS split like a shell would."""
        return shlex.split(self.comfyui_args)

    @property
    def s3_configured(self) -> bool:
        """True when outputs can be uploaded to S3."""
        return bool(self.s3_bucket)


def settings_table() -> str:
    """Markdown table of every setting, its default and meaning (the README embeds it)."""
    rows = ["| Variable | Default | Meaning |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        default = field.default
        if name == "comfyui_python":
            shown = "the worker's Python"
        elif name == "worker_data_dir":
            shown = "`$TMPDIR/comfy-serverless`"
        elif name == "builtin_templates_dir":
            shown = "`workflows/` of the checkout (`/opt/comfy-serverless/workflows` in the images)"
        elif default is None or default == "":
            shown = "unset"
        else:
            shown = f"`{default.value if isinstance(default, StrEnum) else default}`"
        rows.append(f"| `{name.upper()}` | {shown} | {field.description} |")
    return "\n".join(rows)
