"""Boot sequence: parse ComfyUI's command line, apply boot faults, print ComfyUI-like log lines, serve.

The worker shows the last log lines when boot fails, so the lines and the failure traceback look like
real ComfyUI's (logging goes to stderr, as ComfyUI's default logger does; ``--log-stdout`` sends
everything below ERROR to stdout).

Profile "0.38" adds, from the newer ``main.py`` @02018c7eb5 and ``server.py`` @002c3fb9a5: the assets
start-up (database lock, ``ASSETS_STARTUP_FAILED``, assets.py), deprecation warnings for
``--enable-assets``/``--disable-api-nodes`` (L58-62), ``--list-feature-flags``, ``extra_paths.yaml``
(L139-156), a clean one-line error for a port in use (server.py L1375-1379) and the temp folder removed
at shutdown (L682-690).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import shutil
import sys
import time
from typing import Any

from aiohttp import web

from . import EMULATOR_VERSION
from .assets import (
    IN_USE_WARNING,
    LOCK_WAIT_S,
    AssetsStartupFailed,
    DatabaseLock,
    database_in_use,
    database_path,
    failure_message,
    start_assets,
)
from .config import CLI_FEATURE_FLAGS, DETAIL, Settings, make_folders, make_settings, parse
from .faults import ENV_VAR, FaultStore
from .folders import FolderPaths, load_extra_model_paths
from .profiles import Profile, load_profile

log = logging.getLogger("comfy_emulator")

BOOT_TRACEBACK = """Traceback (most recent call last):
  File "/opt/ComfyUI/main.py", line 183, in <module>
    import execution
  File "/opt/ComfyUI/execution.py", line 16, in <module>
    import nodes
  File "/opt/ComfyUI/nodes.py", line 24, in <module>
    import comfy.diffusers_load
  File "/opt/ComfyUI/comfy/diffusers_load.py", line 3, in <module>
    import comfy.sd
  File "/opt/ComfyUI/comfy/sd.py", line 7, in <module>
    from comfy import model_management
  File "/opt/ComfyUI/comfy/model_management.py", line 232, in <module>
    total_vram = get_total_memory(get_torch_device()) / (1024 * 1024)
                                  ^^^^^^^^^^^^^^^^^^
  File "/opt/ComfyUI/comfy/model_management.py", line 182, in get_torch_device
    return torch.device(torch.cuda.current_device())
                        ^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "/usr/local/lib/python3.11/site-packages/torch/cuda/__init__.py", line 1026, in current_device
    _lazy_init()
  File "/usr/local/lib/python3.11/site-packages/torch/cuda/__init__.py", line 372, in _lazy_init
    torch._C._cuda_init()
"""
BOOT_ERROR = "RuntimeError: No CUDA GPUs are available"


class _BelowError(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.ERROR


class _ErrorAndAbove(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR


def _level(name: str) -> int:
    return DETAIL if name == "DETAIL" else int(getattr(logging, name, logging.INFO))


def setup_logging(level: str, use_stdout: bool, files: list[tuple[str, str]] | None = None) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    fmt = logging.Formatter("%(message)s")
    err = logging.StreamHandler(sys.stderr)
    err.setFormatter(fmt)
    err.setLevel(_level(level))
    if use_stdout:
        err.addFilter(_ErrorAndAbove())
        out = logging.StreamHandler(sys.stdout)
        out.setFormatter(fmt)
        out.setLevel(_level(level))
        out.addFilter(_BelowError())
        root.addHandler(out)
    root.addHandler(err)
    lowest = _level(level)
    for file_level, path in files or []:
        # newer --verbose LEVEL FILE: one more log output at its own level
        handler = logging.FileHandler(path, encoding="utf-8")
        handler.setFormatter(fmt)
        handler.setLevel(_level(file_level))
        root.addHandler(handler)
        lowest = min(lowest, _level(file_level))
    root.setLevel(lowest)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def boot_faults(faults: FaultStore) -> None:
    """``boot_delay_s``, ``boot_fail`` and ``boot_fail_times`` (see README)."""
    data = faults.get()
    delay = data.get("boot_delay_s")
    if isinstance(delay, (int, float)) and delay > 0:
        time.sleep(float(delay))
    fail_times = data.get("boot_fail_times")
    failing = bool(data.get("boot_fail"))
    if isinstance(fail_times, int) and fail_times > 0:
        failing = True

        def count_down(d: dict[str, Any]) -> dict[str, Any]:
            left = int(d.get("boot_fail_times", 0)) - 1
            if left > 0:
                d["boot_fail_times"] = left
            else:
                d.pop("boot_fail_times", None)
            return d

        faults.update(count_down)
    if not failing:
        return
    message = data.get("boot_fail")
    last = message if isinstance(message, str) and message.strip() else BOOT_ERROR
    sys.stderr.write(BOOT_TRACEBACK + last.rstrip("\n") + "\n")
    sys.stderr.flush()
    code = data.get("boot_fail_exit_code", 1)
    sys.exit(int(code) if isinstance(code, int) else 1)


def prepare_directories(folders: FolderPaths) -> None:
    # ComfyUI wipes its temp directory at start (PreviewImage files do not survive a restart).
    shutil.rmtree(folders.temp_dir, ignore_errors=True)
    for directory in (folders.input_dir, folders.output_dir, folders.temp_dir, folders.user_dir):
        os.makedirs(directory, exist_ok=True)


def log_banner(settings: Settings, folders: FolderPaths, profile: Profile) -> None:
    if settings.cpu:
        log.info("Checkpoint files will always be loaded safely.")
        log.info("Total VRAM 24105 MB, total RAM 24105 MB")
        log.info("pytorch version: 2.14.1+cu130")
        log.info("Set vram state to: DISABLED")
        log.info("Device: cpu")
    else:
        log.info("Checkpoint files will always be loaded safely.")
        log.info("Total VRAM %d MB, total RAM %d MB", 24 * 1024, 64 * 1024)
        log.info("pytorch version: 2.14.1+cu130")
        log.info("Set vram state to: NORMAL_VRAM")
        log.info("Device: cuda:0 NVIDIA GeForce RTX 4090 (emulated) : cudaMallocAsync")
    log.info("Using pytorch attention")
    log.info("Python version: %s", sys.version)
    log.info("ComfyUI version: %s", profile.version)
    if profile.at_least("0.38"):
        for package in ("comfy-aimdo", "comfy-kitchen"):  # newer main.py: versions after ComfyUI's
            log.info("%s version: %s", package, profile.packages[package])
    log.info(
        "[ComfyUI emulator %s] test double of ComfyUI %s (profile %s): no torch, no real models",
        EMULATOR_VERSION,
        profile.version,
        profile.name,
    )
    log.info("[Prompt Server] web root: %s", os.path.join(profile.root, "web"))
    log.debug(
        "models: %s input: %s output: %s temp: %s",
        folders.models_dir,
        folders.input_dir,
        folders.output_dir,
        folders.temp_dir,
    )


def load_model_paths(settings: Settings, folders: FolderPaths, profile: Profile) -> None:
    """``extra_model_paths.yaml`` next to main.py, then --extra-model-paths-config.  newer main.py
    L139-156: an ``extra_paths.yaml`` there comes first and makes ComfyUI ignore extra_model_paths.yaml."""
    beside = os.path.join(profile.root, "extra_model_paths.yaml")
    paths: list[str] = []
    primary = os.path.join(profile.root, "extra_paths.yaml")
    if profile.at_least("0.38") and os.path.isfile(primary):
        paths.append(primary)
        if os.path.isfile(beside):
            log.warning(
                "Both extra_paths.yaml and extra_model_paths.yaml found; ignoring the deprecated "
                "extra_model_paths.yaml. Please remove or migrate its entries to extra_paths.yaml."
            )
    elif os.path.isfile(beside):
        paths.append(beside)
    for path in paths + settings.extra_model_paths:
        log.info("Loading extra model paths from %s", path)
        load_extra_model_paths(folders, path)


def _stop_startup(kind: str, message: str) -> None:
    """newer main.py stop_startup: one ERROR record a launcher can match, then exit 1."""
    log.error("ASSETS_STARTUP_FAILED: %s\n%s", kind, message)
    raise SystemExit(1)


def start_assets_system(settings: Settings, folders: FolderPaths, faults: FaultStore) -> DatabaseLock | None:
    """newer main.py setup_database (after the custom nodes are imported, before the server starts)."""
    if not settings.assets_enabled:
        held = database_in_use(folders.user_dir, settings.database_url)
        if held is not None:
            log.warning(IN_USE_WARNING.format(path=held))
        return None
    wait = faults.value("assets_lock_wait_s", LOCK_WAIT_S)
    wait_s = float(wait) if isinstance(wait, (int, float)) and wait >= 0 else LOCK_WAIT_S
    try:
        lock = start_assets(
            folders.user_dir, settings.database_url, faults.value("assets_startup_failed"), wait_s
        )
    except AssetsStartupFailed as failure:
        _stop_startup(failure.kind, failure.message)
        raise  # not reached
    if lock is not None:
        log.info("Context impl SQLiteImpl.")
        log.info("Will assume non-transactional DDL.")
    log.info("Background asset scan initiated for models, input")
    return lock


async def serve(settings: Settings, folders: FolderPaths, faults: FaultStore, profile: Profile) -> None:
    from .server import EmulatorServer

    newer = profile.at_least("0.38")
    if newer and settings.assets_enabled and faults.value("assets_startup_failed") == "missing_packages":
        # newer main.py L599: the database packages are checked before anything else is loaded
        location = database_path(settings.database_url, folders.user_dir) or ""
        _stop_startup("missing_packages", failure_message("missing_packages", location, False))
    server = EmulatorServer(settings, folders, faults)
    log.info("")
    log.info("Import times for custom nodes:")
    log.info("   0.0 seconds: %s", os.path.join(folders.base_dir, "custom_nodes", "websocket_image_save.py"))
    log.info("")
    lock: DatabaseLock | None = None
    if newer:
        lock = start_assets_system(settings, folders, faults)
    else:
        log.info("Context impl SQLiteImpl.")
        log.info("Will assume non-transactional DDL.")
    if settings.quick_test:
        return
    try:
        await _run_server(server, settings, newer)
    finally:
        if newer:
            # newer main.py L682-690: asset_manager.shutdown() removes the temp directory on the way out
            shutil.rmtree(folders.temp_dir, ignore_errors=True)
        if lock is not None:
            lock.release()


async def _run_server(server: Any, settings: Settings, newer: bool) -> None:
    runner = web.AppRunner(server.app, access_log=None, handle_signals=False)
    await runner.setup()
    log.info("Starting server\n")
    for index, address in enumerate(settings.listen):
        site = web.TCPSite(runner, address, settings.port)
        try:
            await site.start()
        except OSError as exc:
            if newer and exc.errno == errno.EADDRINUSE:
                # newer server.py L1375-1379: one ERROR line, no traceback, exit 1
                log.error(
                    "Port %d is already in use on address %s. Please close the other application or use "
                    "a different port with --port.",
                    settings.port,
                    address,
                )
                raise SystemExit(1) from None
            if index == 0:
                raise  # 0.8.0: a taken port ends the process with the OSError traceback
            log.warning("Could not listen on %s:%d", address, settings.port)
    address = settings.listen[0]
    if address in ("0.0.0.0", "::"):
        address = "127.0.0.1"
    shown = f"[{address}]" if ":" in address else address
    log.info("To see the GUI go to: http://%s:%d", shown, settings.port)
    try:
        await asyncio.Event().wait()
    finally:
        with contextlib.suppress(Exception):
            await runner.cleanup()


def main(argv: list[str] | None = None, profile: str | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    chosen = load_profile(profile)
    args = parse(argv, chosen)  # argparse: exit 2 on unknown flags, as ComfyUI
    newer = chosen.at_least("0.38")
    if newer and args.list_feature_flags:
        # newer main.py L7-11: print the CLI feature-flag registry and exit before anything else
        sys.stdout.write(json.dumps(CLI_FEATURE_FLAGS, indent=2) + "\n")
        return 0
    settings = make_settings(args, argv, chosen)
    setup_logging(settings.log_level, settings.log_stdout, settings.log_files)
    if newer and args.disable_api_nodes:
        log.warning(
            "--disable-api-nodes is deprecated and will be removed in a future version. It currently "
            "behaves like --offline. Use --offline to keep the frontend offline, or "
            "--disable-partner-nodes to only disable partner nodes."
        )
    if newer and args.enable_assets:
        log.warning(
            "--enable-assets is deprecated and does nothing: the assets system is on unless ComfyUI is "
            "started with --disable-assets."
        )
    faults = FaultStore(os.environ.get(ENV_VAR))
    folders = make_folders(args, chosen)
    log_banner(settings, folders, chosen)
    boot_faults(faults)
    load_model_paths(settings, folders, chosen)
    prepare_directories(folders)
    try:
        asyncio.run(serve(settings, folders, faults, chosen))
    except KeyboardInterrupt:
        log.info("\nStopped server")
    return 0
