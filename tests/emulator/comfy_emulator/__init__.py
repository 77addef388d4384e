"""A test double of ComfyUI: a real aiohttp HTTP + WebSocket server that behaves like the recordings of
ComfyUI 0.8.0 in ``comfyui-reference`` (default profile) or like the newer ComfyUI 0.38.1 described in the
research notes (profile "0.38"); see ``tests/emulator/README.md`` and ``profiles.py``."""

__version__ = "0.8.0"  # the default profile's version; each install root's comfyui_version.py decides
EMULATOR_VERSION = "1.1"
