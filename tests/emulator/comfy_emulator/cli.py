"""Boot sequence: parse ComfyUI's command line, apply boot faults, print ComfyUI-like log lines, serve.

The worker shows the last log lines when boot fails, so the lines and the failure traceback look like
real ComfyUI's (logging goes to stderr, as ComfyUI's default logger does; ``--log-stdout`` sends
everything below ERROR to stdout).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import sys
import time
from typing import Any

from aiohttp import web

from . import EMULATOR_VERSION, __version__
from .config import EMULATOR_DIR, Settings, make_folders, make_settings, parse
from .faults import ENV_VAR, FaultStore
from .folders import FolderPaths, load_extra_model_paths

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


def setup_logging(level: str, use_stdout: bool) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.setLevel(getattr(logging, level, logging.INFO))
    fmt = logging.Formatter("%(message)s")
    err = logging.StreamHandler(sys.stderr)
    err.setFormatter(fmt)
    if use_stdout:
        err.addFilter(_ErrorAndAbove())
        out = logging.StreamHandler(sys.stdout)
        out.setFormatter(fmt)
        out.addFilter(_BelowError())
        root.addHandler(out)
    root.addHandler(err)
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


def log_banner(settings: Settings, folders: FolderPaths) -> None:
    mb = 1024 * 1024
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
    log.info("ComfyUI version: %s", __version__)
    log.info(
        "[ComfyUI emulator %s] test double of ComfyUI %s: no torch, no real models",
        EMULATOR_VERSION,
        __version__,
    )
    log.info("[Prompt Server] web root: %s", os.path.join(EMULATOR_DIR, "web"))
    log.debug(
        "models: %s input: %s output: %s temp: %s",
        folders.models_dir,
        folders.input_dir,
        folders.output_dir,
        folders.temp_dir,
    )
    if settings.unknown_args:
        log.debug("[emulator] ignoring unknown arguments: %s", " ".join(settings.unknown_args))
    del mb


async def serve(settings: Settings, folders: FolderPaths, faults: FaultStore) -> None:
    from .server import EmulatorServer

    server = EmulatorServer(settings, folders, faults)
    log.info("")
    log.info("Import times for custom nodes:")
    log.info("   0.0 seconds: %s", os.path.join(folders.base_dir, "custom_nodes", "websocket_image_save.py"))
    log.info("")
    log.info("Context impl SQLiteImpl.")
    log.info("Will assume non-transactional DDL.")
    if settings.quick_test:
        return
    runner = web.AppRunner(server.app, access_log=None, handle_signals=False)
    await runner.setup()
    log.info("Starting server\n")
    for index, address in enumerate(settings.listen):
        site = web.TCPSite(runner, address, settings.port)
        try:
            await site.start()
        except OSError:
            if index == 0:
                raise  # like ComfyUI: a taken port ends the process with the OSError traceback
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


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args, unknown = parse(argv)
    setup_logging(args.verbose, args.log_stdout)
    settings = make_settings(args, unknown, argv)
    faults = FaultStore(os.environ.get(ENV_VAR))
    log_banner(settings, make_folders(args))
    boot_faults(faults)
    folders = make_folders(args)
    default_yaml = os.path.join(EMULATOR_DIR, "extra_model_paths.yaml")
    for path in ([default_yaml] if os.path.isfile(default_yaml) else []) + settings.extra_model_paths:
        log.info("Loading extra model paths from %s", path)
        load_extra_model_paths(folders, path)
    prepare_directories(folders)
    try:
        asyncio.run(serve(settings, folders, faults))
    except KeyboardInterrupt:
        log.info("\nStopped server")
    return 0
