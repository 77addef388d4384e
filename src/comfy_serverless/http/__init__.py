"""The worker as an HTTP service: RunPod-compatible routes, server-sent progress, bearer auth, signed
webhooks and Prometheus metrics, for pods, any machine with a GPU, and Modal (``deploy/modal_app.py``).

``comfy-serverless serve`` runs :func:`create_app` under uvicorn; see the README's "HTTP service"."""

from .app import create_app

__all__ = ["create_app"]
