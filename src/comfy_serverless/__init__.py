"""comfy-serverless: run ComfyUI workflows as a RunPod serverless worker."""

__version__ = "0.1.0"
