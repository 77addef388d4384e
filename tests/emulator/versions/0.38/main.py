"""ComfyUI-compatible entry point of the emulator's "0.38" profile (ComfyUI 0.38.1):
``COMFYUI_DIR=tests/emulator/versions/0.38`` makes the worker run ``python main.py --listen ... --port P``
here exactly as it would run a newer real ComfyUI."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from comfy_emulator.cli import main

if __name__ == "__main__":
    sys.exit(main(profile="0.38"))
