"""ComfyUI-compatible entry point of the emulator: ``COMFYUI_DIR=tests/emulator`` makes the worker run
``python main.py --listen 127.0.0.1 --port P ...`` here exactly as it would run real ComfyUI."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from comfy_emulator.cli import main

if __name__ == "__main__":
    sys.exit(main())
