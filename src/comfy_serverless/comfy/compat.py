"""What differs between the ComfyUI versions the worker drives, so nothing else has to know.

Versions are told apart by what the server offers, never by comparing version numbers: the flags its
argument parser knows (read from ``comfy/cli_args.py`` before launch, see ``launch.py``) and the routes
it answers (probed once per boot, here). Validation errors of every version are read in
``validation.py``; output entries of every version in ``media/outputs.py`` (newer ones only add fields).

- Cancelling: ComfyUI from about 0.38 has ``POST /api/jobs/{id}/cancel``, which removes a queued prompt
  or interrupts it only while it is still the running one, under the queue's lock (server.py and
  comfy_execution/jobs.py of those versions; tests/emulator/versions/0.38). Older ones have only
  ``POST /queue {"delete"}`` and ``POST /interrupt {"prompt_id"}``, whose check-then-interrupt can in
  principle hit the next prompt (18_interrupt_targeted).
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .client import ComfyClient, ComfyConnectionError, ComfyHTTPError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ServerFeatures:
    """What the running ComfyUI offers, as far as the worker cares."""

    #: ``system.comfyui_version`` from /system_stats (None when it does not say).
    version: str | None = None
    #: ``POST /api/jobs/{id}/cancel`` exists.
    job_cancel: bool = False


async def detect_features(client: ComfyClient) -> ServerFeatures:
    """Ask the running ComfyUI what it offers. The cancel route is probed with an id no prompt has:
    servers that have it answer ``{"cancelled": false}``, older ones 404."""
    version: str | None = None
    try:
        stats = await client.system_stats()
        system = stats.get("system")
        if isinstance(system, dict) and isinstance(system.get("comfyui_version"), str):
            version = system["comfyui_version"]
    except (ComfyConnectionError, ComfyHTTPError) as exc:
        log.warning("Could not read ComfyUI's version from /system_stats: %s", exc)
    try:
        job_cancel = await client.cancel_job(str(uuid.uuid4())) is not None
    except (ComfyConnectionError, ComfyHTTPError) as exc:
        log.warning("Could not probe ComfyUI's /api/jobs/{id}/cancel: %s", exc)
        job_cancel = False
    features = ServerFeatures(version=version, job_cancel=job_cancel)
    log.info(
        "ComfyUI %s: cancels through %s",
        version or "(version unknown)",
        "/api/jobs/{id}/cancel" if job_cancel else "/queue delete and /interrupt",
    )
    return features


async def stop_prompt(
    client: ComfyClient, features: ServerFeatures, prompt_id: str, running: Callable[[], bool]
) -> bool:
    """Stop a prompt the worker gave up on; True when it was taken off the queue before it started
    (then no message will ever end it), False when it is running and was told to stop.

    Raises ComfyHTTPError when ComfyUI refuses, ComfyConnectionError when it does not answer."""
    if features.job_cancel:
        await client.cancel_job(prompt_id)
    else:
        await client.delete_queued([prompt_id])
    if not running() and prompt_id not in await client.queued_prompt_ids():
        return True
    if not features.job_cancel:
        await client.interrupt(prompt_id)
    return False


# --- boot failures ------------------------------------------------------------------------------

_ASSETS_FAILED = re.compile(r"ASSETS_STARTUP_FAILED: (\w+)")
_PORT_IN_USE = re.compile(r"Port (\d+) is already in use on address (\S+)\. Please")
#: Kinds of ASSETS_STARTUP_FAILED (main.py database_failure_message of newer ComfyUI) that a second try
#: cannot mend; ``in_use`` and ``locked`` may pass once the other holder of the database lock is gone.
_LASTING_ASSET_FAILURES = frozenset(
    {"missing_packages", "unsupported_url", "newer_revision", "path_blocked", "not_writable", "corrupt"}
)


@dataclass(frozen=True, slots=True)
class BootFailure:
    """What ComfyUI's own log says about a failed start."""

    #: One sentence for the error, before the log lines.
    reason: str
    #: Starting again would fail the same way: do not retry.
    lasting: bool
    #: A short code for the error's details ("assets_in_use", "port_in_use").
    code: str


def explain_boot_failure(log_lines: Iterable[str]) -> BootFailure | None:
    """The failures newer ComfyUI reports in words rather than a traceback: its assets database
    (``ASSETS_STARTUP_FAILED: <kind>`` then an explanation, exit 1) and a port already in use."""
    lines = list(log_lines)
    for index, line in enumerate(lines):
        if (match := _ASSETS_FAILED.search(line)) is not None:
            kind = match.group(1)
            explanation = " ".join(text.strip() for text in lines[index + 1 : index + 3] if text.strip())
            return BootFailure(
                reason=f"ComfyUI could not open its assets database (ASSETS_STARTUP_FAILED: {kind})"
                + (f": {explanation}" if explanation else "")
                + ". The worker starts ComfyUI with --disable-assets unless COMFYUI_ENABLE_ASSETS=true",
                lasting=kind in _LASTING_ASSET_FAILURES,
                code=f"assets_{kind}",
            )
        if (match := _PORT_IN_USE.search(line)) is not None:
            return BootFailure(
                reason=f"another program took port {match.group(1)} on {match.group(2)} before ComfyUI "
                "could listen there; set COMFYUI_PORT to a free port",
                lasting=False,
                code="port_in_use",
            )
    return None
