"""``python -m comfy_serverless``: start ComfyUI's boot, then RunPod's worker loop.

RunPod's own flags pass through unchanged: ``--rp_serve_api --rp_api_host 127.0.0.1 --rp_api_port 8000``,
``--test_input '{...}'``, or a ``test_input.json`` in the working directory."""

from __future__ import annotations

import atexit
import logging
import os

from .logs import configure_logging
from .settings import Settings

log = logging.getLogger("comfy_serverless")


def main() -> None:
    settings = Settings()
    configure_logging(settings.log_level)
    # RunPod's logger defaults to DEBUG, which prints whole job inputs (keys included) and outputs.
    os.environ.setdefault("RUNPOD_LOG_LEVEL", "INFO")
    # RunPod's automatic system checks import torch and initialise CUDA in this process before the
    # first job, while ComfyUI is doing the same in its own: cold start would pay twice. ComfyUI's boot
    # is the CUDA check that matters; RunPod's separate GPU test binary still runs.
    os.environ.setdefault("RUNPOD_SKIP_AUTO_SYSTEM_CHECKS", "true")

    prestarted = None
    if not settings.attach_mode:
        # Start ComfyUI's boot first: the worker's own imports below then overlap it.
        from .comfy.launch import LaunchError, comfy_folders, launch, reset_folders

        folders = comfy_folders(settings)
        reset_folders(folders)
        try:
            prestarted = launch(settings, folders)
        except LaunchError as exc:
            log.error("%s", exc)  # the first job reports it too, with the same words

    from .worker import Worker

    worker = Worker(settings, prestarted=prestarted)
    worker.start()
    atexit.register(worker.stop)

    import runpod  # imported after RUNPOD_LOG_LEVEL is settled

    from .handler import make_concurrency_modifier, make_handler
    from .runpod_intake import use_prompt_intake

    use_prompt_intake()

    runpod.serverless.start(
        {"handler": make_handler(worker), "concurrency_modifier": make_concurrency_modifier(settings)}
    )


if __name__ == "__main__":
    main()
