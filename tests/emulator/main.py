"""ComfyUI-compatible entry point of the emulator's default profile (ComfyUI 0.8.0):
``COMFYUI_DIR=tests/emulator`` makes the worker run ``python main.py --listen 127.0.0.1 --port P ...``
here exactly as it would run real ComfyUI.  ``versions/<profile>/main.py`` starts the other profiles."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from comfy_emulator.cli import main

if __name__ == "__main__":
    sys.exit(main(profile="0.8.0"))
