"""Node plumbing: the registry, the context a node runs in, node results and node errors."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from ..folders import FolderPaths

T = TypeVar("T")


@dataclass
class NodeResult:
    outputs: tuple[Any, ...] = ()
    ui: dict[str, Any] | None = None


class NodeError(Exception):
    """A failure reported the way ComfyUI reports it: ``exception_type`` is ``type_name`` and the
    traceback is ``frames`` (the common execution.py frames are prepended by the executor)."""

    def __init__(self, type_name: str, message: str, frames: list[str] | None = None) -> None:
        super().__init__(message)
        self.type_name = type_name
        self.message = message
        self.frames = frames or []


class Settings(Protocol):
    disable_metadata: bool
    preview_method: str
    preview_size: int
    cpu: bool


class NodeContext(Protocol):
    node_id: str
    class_type: str
    prompt_id: str
    prompt: dict[str, Any]
    extra_data: dict[str, Any]
    preview_method: str

    @property
    def folders(self) -> FolderPaths: ...

    @property
    def settings(self) -> Settings: ...

    def scaled(self, seconds: float) -> float: ...

    async def work(self, seconds: float, fn: Callable[..., T] | None = None, *args: Any) -> T | None: ...

    async def progress(self, value: int, total: int, preview: bytes | None = None) -> None: ...

    def send_text(self, text: str) -> None: ...

    def check_interrupt(self) -> None: ...

    def fault(self, key: str, default: Any = None) -> Any: ...


NodeFunc = Callable[[NodeContext, dict[str, Any]], Awaitable[NodeResult]]
REGISTRY: dict[str, NodeFunc] = {}


def node(*class_names: str) -> Callable[[NodeFunc], NodeFunc]:
    def register(fn: NodeFunc) -> NodeFunc:
        for name in class_names:
            REGISTRY[name] = fn
        return fn

    return register


async def run_timed(seconds: float, fn: Callable[..., T] | None, *args: Any) -> T | None:
    """Run ``fn`` in a worker thread while the emulated time passes; takes max(real, emulated)."""
    start = time.monotonic()
    result: T | None = None
    if fn is not None:
        result = await asyncio.to_thread(fn, *args)
    remaining = seconds - (time.monotonic() - start)
    if remaining > 0:
        await asyncio.sleep(remaining)
    return result


# --------------------------------------------------------------------------- traceback frames
# The frames every node error starts with (14_runtime_error, verbatim).
EXECUTION_FRAMES = [
    '  File "/opt/ComfyUI/execution.py", line 518, in execute\n'
    "    output_data, output_ui, has_subgraph, has_pending_tasks = await get_output_data(prompt_id, "
    "unique_id, obj, input_data_all, execution_block_cb=execution_block_cb, pre_execute_cb=pre_execute_cb, "
    "v3_data=v3_data)\n"
    "                                                              " + "^" * 151 + "\n",
    '  File "/opt/ComfyUI/execution.py", line 329, in get_output_data\n'
    "    return_values = await _async_map_node_over_list(prompt_id, unique_id, obj, input_data_all, "
    "obj.FUNCTION, allow_interrupt=True, execution_block_cb=execution_block_cb, "
    "pre_execute_cb=pre_execute_cb, v3_data=v3_data)\n"
    "                    " + "^" * 197 + "\n",
    '  File "/opt/ComfyUI/execution.py", line 303, in _async_map_node_over_list\n'
    "    await process_inputs(input_dict, i)\n",
    '  File "/opt/ComfyUI/execution.py", line 291, in process_inputs\n'
    "    result = f(**inputs)\n"
    "             ^^^^^^^^^^^\n",
]
# v3 nodes (comfy_api) go through two more frames (14_runtime_error, ImageToMask).
V3_FRAMES = [
    '  File "/opt/ComfyUI/comfy_api/internal/__init__.py", line 149, in wrapped_func\n'
    "    return method(locked_class, **inputs)\n"
    "           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n",
    '  File "/opt/ComfyUI/comfy_api/latest/_io.py", line 1570, in EXECUTE_NORMALIZED\n'
    "    to_return = cls.execute(*args, **kwargs)\n"
    "                ^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n",
]


def frame(path: str, line: int, func: str, code: str) -> str:
    return f'  File "{path}", line {line}, in {func}\n    {code}\n'
