"""Command line of the emulator: the flags of ComfyUI's ``main.py`` that matter here, everything else
accepted and ignored (``parse_known_args``), so the worker can start it exactly like real ComfyUI."""

from __future__ import annotations

import argparse
import os
import tempfile
from dataclasses import dataclass, field

from .folders import FolderPaths

EMULATOR_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIME_SCALE_ENV = "COMFY_EMULATOR_TIME_SCALE"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="main.py", add_help=True)
    p.add_argument("--listen", type=str, default="127.0.0.1", metavar="IP", nargs="?", const="0.0.0.0,::")
    p.add_argument("--port", type=int, default=8188)
    p.add_argument("--tls-keyfile", type=str)
    p.add_argument("--tls-certfile", type=str)
    p.add_argument("--enable-cors-header", type=str, default=None, metavar="ORIGIN", nargs="?", const="*")
    p.add_argument("--max-upload-size", type=float, default=100)
    p.add_argument("--base-directory", type=str, default=None)
    p.add_argument(
        "--extra-model-paths-config", type=str, default=None, metavar="PATH", nargs="+", action="append"
    )
    p.add_argument("--output-directory", type=str, default=None)
    p.add_argument("--temp-directory", type=str, default=None)
    p.add_argument("--input-directory", type=str, default=None)
    p.add_argument("--user-directory", type=str, default=None)
    p.add_argument("--auto-launch", action="store_true")
    p.add_argument("--disable-auto-launch", action="store_true")
    p.add_argument("--cuda-device", type=int, default=None)
    p.add_argument("--cpu", action="store_true")
    p.add_argument(
        "--preview-method", type=str, default="none", choices=["none", "auto", "latent2rgb", "taesd"]
    )
    p.add_argument("--preview-size", type=int, default=512)
    cache = p.add_mutually_exclusive_group()
    cache.add_argument("--cache-classic", action="store_true")
    cache.add_argument("--cache-lru", type=int, default=0)
    cache.add_argument("--cache-none", action="store_true")
    cache.add_argument("--cache-ram", nargs="?", const=4.0, type=float, default=0)
    p.add_argument("--disable-metadata", action="store_true")
    p.add_argument("--disable-all-custom-nodes", action="store_true")
    p.add_argument("--disable-api-nodes", action="store_true")
    p.add_argument("--multi-user", action="store_true")
    p.add_argument(
        "--verbose",
        default="INFO",
        const="DEBUG",
        nargs="?",
        choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
    )
    p.add_argument("--log-stdout", action="store_true")
    p.add_argument("--quick-test-for-ci", action="store_true")
    p.add_argument("--dont-print-server", action="store_true")
    p.add_argument("--windows-standalone-build", action="store_true")
    p.add_argument("--front-end-version", type=str, default=None)
    p.add_argument("--front-end-root", type=str, default=None)
    for flag in (
        "--highvram",
        "--normalvram",
        "--lowvram",
        "--novram",
        "--gpu-only",
        "--fast",
        "--force-fp16",
        "--force-fp32",
        "--fp16-vae",
        "--bf16-vae",
        "--fp32-vae",
        "--use-pytorch-cross-attention",
        "--use-split-cross-attention",
        "--use-quad-cross-attention",
        "--disable-smart-memory",
        "--deterministic",
        "--dont-upcast-attention",
        "--disable-xformers",
        "--force-channels-last",
        "--disable-cuda-malloc",
        "--cuda-malloc",
    ):
        p.add_argument(flag, action="store_true")
    p.add_argument("--reserve-vram", type=float, default=None)
    return p


@dataclass
class Settings:
    listen: list[str]
    port: int
    cpu: bool
    preview_method: str
    preview_size: int
    disable_metadata: bool
    disable_api_nodes: bool
    cache_mode: str  # "classic" | "lru" | "none"
    cache_lru: int
    max_upload_size: int
    cors_origin: str | None
    quick_test: bool
    time_scale: float
    argv: list[str]
    unknown_args: list[str] = field(default_factory=list)
    extra_model_paths: list[str] = field(default_factory=list)


def parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    return build_parser().parse_known_args(argv)


def default_runtime_root() -> str:
    """Writable default for input/output/temp/user when neither --base-directory nor the individual
    directories are given: a stable folder under the system temp dir (never inside the repository)."""
    return os.path.join(tempfile.gettempdir(), "comfy-emulator")


def make_folders(args: argparse.Namespace) -> FolderPaths:
    if args.base_directory:
        base = os.path.abspath(args.base_directory)
        runtime = base
    else:
        base = EMULATOR_DIR
        runtime = default_runtime_root()
    input_dir = (
        os.path.abspath(args.input_directory) if args.input_directory else os.path.join(runtime, "input")
    )
    output_dir = (
        os.path.abspath(args.output_directory) if args.output_directory else os.path.join(runtime, "output")
    )
    # Real ComfyUI puts temp files in <--temp-directory>/temp (01: --temp-directory /opt/comfy-runtime).
    temp_dir = (
        os.path.join(os.path.abspath(args.temp_directory), "temp")
        if args.temp_directory
        else os.path.join(runtime, "temp")
    )
    user_dir = os.path.abspath(args.user_directory) if args.user_directory else os.path.join(runtime, "user")
    return FolderPaths(base, input_dir, output_dir, temp_dir, user_dir)


def make_settings(args: argparse.Namespace, unknown: list[str], argv: list[str]) -> Settings:
    if args.cache_none:
        cache_mode = "none"
    elif args.cache_lru and args.cache_lru > 0:
        cache_mode = "lru"
    else:
        cache_mode = "classic"
    try:
        time_scale = float(os.environ.get(TIME_SCALE_ENV, "1"))
    except ValueError:
        time_scale = 1.0
    extra: list[str] = []
    for group in args.extra_model_paths_config or []:
        extra.extend(group)
    listen = [a.strip() for a in str(args.listen).split(",") if a.strip()] or ["127.0.0.1"]
    return Settings(
        listen=listen,
        port=int(args.port),
        cpu=bool(args.cpu),
        preview_method=str(args.preview_method),
        preview_size=int(args.preview_size),
        disable_metadata=bool(args.disable_metadata),
        disable_api_nodes=bool(args.disable_api_nodes),
        cache_mode=cache_mode,
        cache_lru=int(args.cache_lru or 0),
        max_upload_size=round(float(args.max_upload_size) * 1024 * 1024),
        cors_origin=args.enable_cors_header,
        quick_test=bool(args.quick_test_for_ci),
        time_scale=max(0.0, time_scale),
        argv=["main.py", *argv],
        unknown_args=unknown,
        extra_model_paths=extra,
    )
