"""Values that flow between emulated nodes, and how they print in ``current_inputs`` of execution errors.

Images are lists of Pillow RGB frames (ComfyUI: float tensors [B,H,W,3]); their ``str()`` imitates
torch's summarised tensor repr, because 14_runtime_error shows ``current_inputs.image`` as
``"tensor([[[[0., 0., 0.], ..."``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from PIL import Image

EDGE = 3  # torch PRINT_OPTS.edgeitems
THRESHOLD = 1000  # torch PRINT_OPTS.threshold


def _formatter(values: set[int], scale: float = 255.0) -> tuple[Any, int]:
    """torch._tensor_str._Formatter for float tensors whose elements are ``v / scale``."""
    nonzero = [v / scale for v in values if v != 0]
    int_mode = all(float(x).is_integer() for x in nonzero)
    if int_mode:
        width = max([1] + [len(f"{x:.0f}") + 1 for x in nonzero])

        def fmt(v: int) -> str:
            return f"{v / scale:.0f}."

    else:
        sci = bool(nonzero) and (
            max(nonzero) / min(nonzero) > 1000.0 or max(nonzero) > 1e8 or min(nonzero) < 1e-4
        )
        if sci:
            width = max(len(f"{x:.4e}") for x in nonzero)

            def fmt(v: int) -> str:
                return f"{v / scale:.4e}"

        else:
            width = max(len(f"{x:.4f}") for x in nonzero)

            def fmt(v: int) -> str:
                return f"{v / scale:.4f}"

    def padded(v: int) -> str:
        s = fmt(v)
        return " " * (width - len(s)) + s

    return padded, width


def _indices(n: int, summarize: bool) -> list[int | None]:
    if summarize and n > 2 * EDGE:
        return [*range(EDGE), None, *range(n - EDGE, n)]
    return list(range(n))


def tensor_repr(shape: tuple[int, ...], get: Any, values: set[int]) -> str:
    """Summarised torch-style repr of a tensor given element access ``get(index_tuple) -> int``."""
    numel = 1
    for s in shape:
        numel *= s
    summarize = numel > THRESHOLD
    fmt, _ = _formatter(values)

    def build(prefix: tuple[int, ...], indent: int) -> str:
        dim = len(shape) - len(prefix)
        n = shape[len(prefix)]
        if dim == 1:
            parts = ["..." if i is None else fmt(get((*prefix, i))) for i in _indices(n, summarize)]
            return "[" + ", ".join(parts) + "]"
        slices = ["..." if i is None else build((*prefix, i), indent + 1) for i in _indices(n, summarize)]
        sep = "," + "\n" * (dim - 1) + " " * (indent + 1)
        return "[" + sep.join(slices) + "]"

    return "tensor(" + build((), len("tensor(")) + ")"


@dataclass(eq=False)
class ImageBatch:
    """IMAGE: a batch of equally sized RGB frames."""

    frames: list[Image.Image]

    @property
    def width(self) -> int:
        return self.frames[0].width if self.frames else 0

    @property
    def height(self) -> int:
        return self.frames[0].height if self.frames else 0

    @property
    def batch(self) -> int:
        return len(self.frames)

    def __str__(self) -> str:
        if not self.frames:
            return "tensor([], size=(0, 0, 0, 3))"
        values: set[int] = set()
        seen: set[int] = set()
        for frame in self.frames:
            if id(frame) in seen:
                continue
            seen.add(id(frame))
            hist = frame.histogram()
            for i, count in enumerate(hist):
                if count:
                    values.add(i % 256)
        pixels = [f.load() for f in self.frames]

        def get(idx: tuple[int, ...]) -> int:
            b, y, x, c = idx
            px = pixels[b]
            assert px is not None
            value = px[x, y]
            return int(value[c]) if isinstance(value, tuple) else int(value)

        return tensor_repr((self.batch, self.height, self.width, 3), get, values)

    __repr__ = __str__


@dataclass(eq=False)
class MaskBatch:
    """MASK: a batch of single-channel frames (mode "L")."""

    frames: list[Image.Image]

    @property
    def width(self) -> int:
        return self.frames[0].width if self.frames else 0

    @property
    def height(self) -> int:
        return self.frames[0].height if self.frames else 0

    def __str__(self) -> str:
        if not self.frames:
            return "tensor([], size=(0, 0, 0))"
        values: set[int] = set()
        for frame in self.frames:
            for i, count in enumerate(frame.histogram()):
                if count:
                    values.add(i)
        pixels = [f.load() for f in self.frames]

        def get(idx: tuple[int, ...]) -> int:
            b, y, x = idx
            px = pixels[b]
            assert px is not None
            value = px[x, y]
            return int(value) if not isinstance(value, tuple) else int(value[0])

        return tensor_repr((len(self.frames), self.height, self.width), get, values)

    __repr__ = __str__


@dataclass(eq=False)
class Latent:
    """LATENT: only its geometry matters here (pixel size / 8)."""

    width: int  # latent width (pixels / 8)
    height: int
    batch: int = 1
    channels: int = 4
    frames: int = 1

    def __str__(self) -> str:
        shape = [self.batch, self.channels, self.height, self.width]
        if self.frames > 1:
            shape.insert(2, self.frames)
        zero = tensor_repr(tuple(shape), lambda _idx: 0, {0})
        return "{'samples': " + zero + "}"

    __repr__ = __str__


@dataclass(eq=False)
class Audio:
    sample_rate: int
    channels: int
    samples: int
    batch: int = 1

    def __str__(self) -> str:
        zero = tensor_repr((self.batch, self.channels, self.samples), lambda _idx: 0, {0})
        return "{'waveform': " + zero + ", 'sample_rate': " + str(self.sample_rate) + "}"

    __repr__ = __str__


@dataclass(eq=False)
class Video:
    images: ImageBatch
    fps: float
    audio: Audio | None = None

    def __str__(self) -> str:
        return f"<comfy_api.latest._input_impl.video_types.VideoFromComponents object at 0x{id(self):x}>"

    __repr__ = __str__


@dataclass(eq=False)
class Handle:
    """Any other value type (MODEL, CLIP, VAE, CONDITIONING, UPSCALE_MODEL, ...): an opaque object."""

    type_name: str
    name: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        label = self.type_name.lower().replace(",", "_") or "object"
        return f"<emulated.{label} object at 0x{id(self):x}>"

    __repr__ = __str__


def format_value(value: Any) -> Any:
    """How execution errors print an input (ComfyUI's format_value)."""
    if value is None:
        return None
    if isinstance(value, (int, float, bool, str)):
        return value
    return str(value)
