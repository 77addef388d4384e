"""The ComfyUI version this install root emulates (real ComfyUI keeps its version in this file too)."""

__version__ = "0.38.1"
