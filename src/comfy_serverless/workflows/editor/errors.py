"""The one error the converter raises: a workflow the editor format cannot be turned into a prompt."""

from __future__ import annotations

from typing import Any

from ...errors import WorkflowError


class ConversionError(WorkflowError):
    """An editor workflow that cannot become a prompt; the message names the node, input or link."""

    def __init__(self, message: str, **details: Any):
        super().__init__(message, details={"format": "ui", **details})
