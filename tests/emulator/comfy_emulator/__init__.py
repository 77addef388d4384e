"""A test double of ComfyUI 0.8.0: a real aiohttp HTTP + WebSocket server that behaves like the
recordings in ``comfyui-reference`` (see ``tests/emulator/README.md``)."""

__version__ = "0.8.0"
EMULATOR_VERSION = "1.0"
