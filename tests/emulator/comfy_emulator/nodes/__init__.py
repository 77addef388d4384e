"""Emulated node implementations.  Importing this package registers them in ``REGISTRY``; every other
class of the catalogue runs through ``generic`` (pass-through of inputs, dummy outputs)."""

from . import images, media, models
from .base import REGISTRY, NodeContext, NodeError, NodeResult
from .models import generic

__all__ = ["REGISTRY", "NodeContext", "NodeError", "NodeResult", "generic", "images", "media", "models"]
