"""Command line of the emulator.

The parser is built from the profile's ``comfy/cli_args.py`` (``FLAGS``, ``EXCLUSIVE``): every flag that
ComfyUI version accepts is accepted, any other one ends the process with argparse's
``main.py: error: unrecognized arguments: ...`` and exit code 2, exactly as real ComfyUI's
``parser.parse_args()`` does (0.8.0 ``comfy/cli_args.py`` L235-238).  The flags the emulator acts on get
their types, defaults and choices from ``_SEMANTICS`` below.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .folders import FolderPaths
from .profiles import EMULATOR_DIR, Profile

__all__ = [
    "EMULATOR_DIR",
    "FolderPaths",
    "Settings",
    "build_parser",
    "make_folders",
    "make_settings",
    "parse",
]

TIME_SCALE_ENV = "COMFY_EMULATOR_TIME_SCALE"

LEVELS_080 = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# newer: comfy/cli_args.py @03294572a5 adds a DETAIL level between DEBUG and INFO (spec section 9).
LEVELS_NEW = ("DEBUG", "DETAIL", "INFO", "WARNING", "ERROR", "CRITICAL")
DETAIL = 15
logging.addLevelName(DETAIL, "DETAIL")

PERFORMANCE_FEATURES = ("fp16_accumulation", "fp8_matrix_mult", "cublas_ops", "autotune")


def is_valid_directory(path: str) -> str:
    """ComfyUI refuses a --user-directory (--front-end-root, --models-directory) that is not a readable
    directory, at argparse time (exit 2; 0.8.0 cli_args.py L195-203)."""
    if not os.path.exists(path):
        raise argparse.ArgumentTypeError(f"The path '{path}' does not exist.")
    if not os.path.isdir(path):
        raise argparse.ArgumentTypeError(f"'{path}' is not a directory.")
    if not os.access(path, os.R_OK):
        raise argparse.ArgumentTypeError(f"You do not have read permissions for '{path}'.")
    return path


class _VerboseOutputs(argparse.Action):
    """newer ``--verbose [LEVEL [FILE]]``, repeatable: each use adds a (level, file-or-None) output
    (cli_args.py @03294572a5; a bare ``--verbose`` still means DEBUG on the console)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        given = list(values) if isinstance(values, list) else []
        if not given:
            output: tuple[str, str | None] = ("DEBUG", None)
        elif len(given) == 1 and given[0] in LEVELS_NEW:
            output = (given[0], None)
        elif len(given) == 2 and given[0] in LEVELS_NEW:
            output = (given[0], given[1])
        else:
            parser.error(f"{option_string} expects no values, a console LEVEL, or LEVEL FILE")
        setattr(namespace, self.dest, [*getattr(namespace, self.dest, []), output])


def _arity(code: str) -> dict[str, Any]:
    """argparse keywords for the arity codes of ``comfy/cli_args.py``."""
    table: dict[str, dict[str, Any]] = {
        "switch": {"action": "store_true"},
        "value": {},
        "value?": {"nargs": "?", "const": True},
        "values*": {"nargs": "*"},
        "values+": {"nargs": "+"},
        "value append": {"action": "append", "default": []},
        "values+ append": {"nargs": "+", "action": "append"},
        "values* append": {"nargs": "*", "action": "append", "default": []},
    }
    if code not in table:
        raise ValueError(f"unknown arity {code!r} in comfy/cli_args.py")
    return dict(table[code])


# Types, defaults and choices of the flags whose values the emulator uses (same in both profiles unless
# the arity differs, see _semantics).
_SEMANTICS: dict[str, dict[str, Any]] = {
    "--listen": {"type": str, "default": "127.0.0.1", "const": "0.0.0.0,::", "metavar": "IP"},
    "--port": {"type": int, "default": 8188},
    "--enable-cors-header": {"type": str, "default": None, "const": "*", "metavar": "ORIGIN"},
    "--max-upload-size": {"type": float, "default": 100},
    "--extra-model-paths-config": {"type": str, "default": None, "metavar": "PATH"},
    "--default-device": {"type": int, "default": None},
    "--directml": {"type": int, "const": -1},
    "--preview-method": {"default": "none", "choices": ["none", "auto", "latent2rgb", "taesd"]},
    "--preview-size": {"type": int, "default": 512},
    "--cache-lru": {"type": int, "default": 0},
    "--reserve-vram": {"type": float, "default": None},
    "--vram-headroom": {"type": float, "default": 0},
    "--async-offload": {"type": int, "const": 2, "default": None},
    "--default-hashing-function": {"default": "sha256", "choices": ["md5", "sha1", "sha256", "sha512"]},
    "--fast": {"choices": list(PERFORMANCE_FEATURES)},
    "--whitelist-custom-nodes": {"default": []},
    "--user-directory": {"type": is_valid_directory, "default": None},
    "--front-end-root": {"type": is_valid_directory, "default": None},
    "--models-directory": {"type": is_valid_directory, "default": None},
    "--database-url": {"type": str, "default": None},
}


def _semantics(flag: str, arity: str) -> dict[str, Any]:
    if flag == "--cache-ram":
        if arity == "value?":  # 0.8.0 cli_args.py L115: one optional number, 4 GB when bare
            return {"type": float, "const": 4.0, "default": 0}
        return {"type": float, "default": [], "metavar": "GB"}  # newer: GB [GB]
    if flag == "--verbose":
        if arity == "value?":  # 0.8.0 cli_args.py L181
            return {"default": "INFO", "const": "DEBUG", "choices": list(LEVELS_080)}
        return {"action": _VerboseOutputs, "default": [], "metavar": "LEVEL FILE"}
    return dict(_SEMANTICS.get(flag, {}))


def build_parser(profile: Profile) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="main.py")
    containers: dict[str, Any] = {}
    for group in profile.exclusive:
        exclusive = parser.add_mutually_exclusive_group()
        for flag in group:
            containers[flag] = exclusive
    for flag, arity in profile.flags.items():
        kwargs = _arity(arity)
        kwargs.update(_semantics(flag, arity))
        if kwargs.get("action") in ("store_true",):
            kwargs.pop("type", None)
        containers.get(flag, parser).add_argument(flag, **kwargs)
    return parser


def parse(argv: list[str], profile: Profile) -> argparse.Namespace:
    """Parse like ComfyUI: unknown flags, bad values and exclusive flags together exit with code 2."""
    parser = build_parser(profile)
    args = parser.parse_args(argv)
    cache_ram = getattr(args, "cache_ram", None)
    if isinstance(cache_ram, list) and len(cache_ram) > 2:
        # newer cli_args.py @03294572a5, after parse_args
        parser.error("--cache-ram accepts at most two values: active GB and inactive GB")
    return args


@dataclass
class Settings:
    listen: list[str]
    port: int
    cpu: bool
    preview_method: str
    preview_size: int
    disable_metadata: bool
    disable_api_nodes: bool
    cache_mode: str  # "classic" | "lru" | "ram" | "none"
    cache_lru: int
    max_upload_size: int
    cors_origin: str | None
    quick_test: bool
    time_scale: float
    argv: list[str]
    profile: Profile | None = None
    extra_model_paths: list[str] = field(default_factory=list)
    max_upload_size_mb: float | int = 100
    assets_enabled: bool = False
    database_url: str | None = None
    feature_flags: dict[str, Any] = field(default_factory=dict)
    log_level: str = "INFO"
    log_files: list[tuple[str, str]] = field(default_factory=list)
    log_stdout: bool = False
    print_server: bool = True

    def at_least(self, version: str) -> bool:
        return self.profile is not None and self.profile.at_least(version)


def default_runtime_root(profile: Profile | None = None) -> str:
    """Writable default for input/output/temp/user when neither --base-directory nor the individual
    directories are given: a stable folder under the system temp dir (never inside the repository)."""
    name = "comfy-emulator"
    if profile is not None and profile.name != "0.8.0":
        name += "-" + profile.name
    return os.path.join(tempfile.gettempdir(), name)


def make_folders(args: argparse.Namespace, profile: Profile) -> FolderPaths:
    if args.base_directory:
        base = os.path.abspath(args.base_directory)
        runtime = base
    else:
        base = profile.root
        runtime = default_runtime_root(profile)
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
    models_dir = getattr(args, "models_directory", None)
    # newer folder_paths.py @1df2885ebd: --models-directory replaces <base>/models; 7 more model folders.
    return FolderPaths(
        base,
        input_dir,
        output_dir,
        temp_dir,
        user_dir,
        os.path.abspath(models_dir) if models_dir else None,
        newer_folders=profile.at_least("0.38"),
    )


def _cache_mode(args: argparse.Namespace, profile: Profile) -> str:
    if profile.at_least("0.38"):
        # newer main.py prompt_worker (@02018c7eb5; app/prompt_worker.py @280bc6593b): RAM pressure is the
        # default; --cache-classic (or --high-ram), --cache-lru N, --cache-none pick the others.
        if args.cache_classic or getattr(args, "high_ram", False):
            return "classic"
        if args.cache_lru and args.cache_lru > 0:
            return "lru"
        if args.cache_none:
            return "none"
        return "ram"
    # 0.8.0 main.py L200-206: classic by default; LRU, then RAM pressure (--cache-ram N > 0), then none.
    if args.cache_lru and args.cache_lru > 0:
        return "lru"
    if isinstance(args.cache_ram, (int, float)) and args.cache_ram > 0:
        return "ram"
    if args.cache_none:
        return "none"
    return "classic"


# newer comfy_api/feature_flags.py @1924b05ec8: the registry --list-feature-flags prints, whose types
# decide how --feature-flag values are converted.
CLI_FEATURE_FLAGS: dict[str, dict[str, Any]] = {
    "show_signin_button": {
        "type": "bool",
        "default": False,
        "description": "Show the sign-in button in the frontend even when not signed in",
    },
    "enable_telemetry": {
        "type": "bool",
        "default": False,
        "description": "Signal the frontend that telemetry collection is enabled",
    },
    "partner_run_gate_enabled": {
        "type": "bool",
        "default": True,
        "description": "Gate the local Run button behind sign-in when the graph contains partner nodes",
    },
}


def _feature_flags(items: list[str]) -> dict[str, Any]:
    """``--feature-flag KEY[=VALUE]``: bare KEY is "true"; registered keys are converted to their type,
    a value that does not convert is dropped with a warning; other keys stay strings (feature_flags.py
    @1924b05ec8 ``_parse_cli_feature_flags``)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not key:
            continue
        value = raw.strip() if sep else "true"
        kind = CLI_FEATURE_FLAGS.get(key, {}).get("type")
        try:
            if kind == "bool":
                if value.lower() not in ("true", "false"):
                    raise ValueError(f"expected 'true' or 'false', got {value!r}")
                out[key] = value.lower() == "true"
            elif kind == "int":
                out[key] = int(value)
            elif kind == "float":
                out[key] = float(value)
            else:
                out[key] = value
        except ValueError as exc:
            logging.getLogger("comfy_emulator").warning(
                "Could not coerce --feature-flag %s=%r to %s (%s); dropping flag.", key, value, kind, exc
            )
    return out


def _log_outputs(args: argparse.Namespace, profile: Profile) -> tuple[str, list[tuple[str, str]]]:
    if not profile.at_least("0.38"):
        return str(args.verbose), []
    outputs: list[tuple[str, str | None]] = list(args.verbose or [])
    console = [level for level, path in outputs if path is None]
    level = min(console, key=LEVELS_NEW.index, default="INFO")
    files = [(lvl, path) for lvl, path in outputs if path is not None]
    return level, files


def make_settings(args: argparse.Namespace, argv: list[str], profile: Profile) -> Settings:
    try:
        time_scale = float(os.environ.get(TIME_SCALE_ENV, "1"))
    except ValueError:
        time_scale = 1.0
    extra: list[str] = []
    for group in args.extra_model_paths_config or []:
        extra.extend(group)
    listen = [a.strip() for a in str(args.listen).split(",") if a.strip()] or ["127.0.0.1"]
    newer = profile.at_least("0.38")
    # newer cli_args.py: --disable-api-nodes is an alias of --offline, which disables partner (API) nodes.
    no_api_nodes = bool(args.disable_api_nodes)
    if newer:
        no_api_nodes = no_api_nodes or bool(args.offline) or bool(args.disable_partner_nodes)
    level, files = _log_outputs(args, profile)
    return Settings(
        listen=listen,
        port=int(args.port),
        cpu=bool(args.cpu),
        preview_method=str(args.preview_method),
        preview_size=int(args.preview_size),
        disable_metadata=bool(args.disable_metadata),
        disable_api_nodes=no_api_nodes,
        cache_mode=_cache_mode(args, profile),
        cache_lru=int(args.cache_lru or 0),
        max_upload_size=round(float(args.max_upload_size) * 1024 * 1024),
        cors_origin=args.enable_cors_header,
        quick_test=bool(args.quick_test_for_ci),
        time_scale=max(0.0, time_scale),
        argv=["main.py", *argv],
        profile=profile,
        extra_model_paths=extra,
        max_upload_size_mb=args.max_upload_size,
        # newer main.py @02018c7eb5 / PR #16884: the assets system is on unless --disable-assets.
        assets_enabled=newer and not args.disable_assets,
        database_url=args.database_url,
        feature_flags=_feature_flags(list(getattr(args, "feature_flag", []) or [])) if newer else {},
        log_level=level,
        log_files=files,
        log_stdout=bool(args.log_stdout),
        print_server=not args.dont_print_server,
    )
