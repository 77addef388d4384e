"""Helpers for tests: write fault switches, start the emulator as a real subprocess, wait until it
answers, stop/kill/restart it.

Typical use::

    from comfy_emulator.control import Faults, start_emulator

    with start_emulator(tmp_path, faults={"node_delay_s": {"SaveImage": 1}}) as emu:
        requests.get(emu.base_url + "/system_stats")
        emu.faults.set(disk_full=True)        # takes effect at the next node start
        emu.add_model("checkpoints", "sd15.safetensors")
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

EMULATOR_DIR = Path(__file__).resolve().parent.parent
MAIN = EMULATOR_DIR / "main.py"
# Install roots of the emulated ComfyUI versions (profiles.py ROOTS): what COMFYUI_DIR would name.
PROFILE_ROOTS = {"0.8.0": EMULATOR_DIR, "0.38": EMULATOR_DIR / "versions" / "0.38"}
FAULTS_ENV = "COMFY_EMULATOR_FAULTS_FILE"
TIME_SCALE_ENV = "COMFY_EMULATOR_TIME_SCALE"


class EmulatorBootError(RuntimeError):
    """The emulator exited or did not answer in time; the message ends with its last log lines."""


class Faults:
    """The JSON fault file the emulator re-reads at boot, prompt start and node start."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    @property
    def env(self) -> dict[str, str]:
        return {FAULTS_ENV: str(self.path)}

    def read(self) -> dict[str, Any]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        data = json.loads(text) if text.strip() else {}
        return data if isinstance(data, dict) else {}

    def write(self, data: Mapping[str, Any]) -> None:
        """Replace all faults (atomic rename, so the emulator never reads half a file)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".faults-", dir=str(self.path.parent))
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(dict(data), fh, indent=2, sort_keys=True)
        os.replace(tmp, self.path)

    def set(self, **faults: Any) -> None:
        """Add/replace some faults, keep the others."""
        data = self.read()
        data.update(faults)
        self.write(data)

    def remove(self, *keys: str) -> None:
        data = self.read()
        for key in keys:
            data.pop(key, None)
        self.write(data)

    def clear(self) -> None:
        self.write({})


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _default_sigint() -> None:
    """In the child: SIGINT back to its default, as at a terminal where ComfyUI's Ctrl-C is pressed.

    A test run started in the background of a non-interactive shell inherits SIGINT ignored, and Python
    then never installs its KeyboardInterrupt handler, so the emulator would not stop on SIGINT.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class EmulatorProcess:
    """A running emulator.  Directories live under ``root``:
    ``input/``, ``output/``, ``temp/`` (ComfyUI appends ``temp`` to --temp-directory), ``models/<folder>``,
    ``user/``, the fault file ``faults.json`` and the combined log ``emulator.log``."""

    def __init__(
        self,
        root: Path,
        port: int,
        extra_args: Iterable[str],
        env: Mapping[str, str] | None,
        python: str,
        host: str = "127.0.0.1",
        profile: str = "0.8.0",
    ) -> None:
        self.root = root
        self.profile = profile
        self.comfyui_dir = PROFILE_ROOTS[profile]
        self.port = port
        self.host = host
        self.extra_args = list(extra_args)
        self.extra_env = dict(env or {})
        self.python = python
        self.input_dir = root / "input"
        self.output_dir = root / "output"
        self.temp_dir = root / "temp"
        self.models_dir = root / "models"
        self.user_dir = root / "user"
        self.log_path = root / "emulator.log"
        self.faults = Faults(root / "faults.json")
        self.process: subprocess.Popen[bytes] | None = None

    # ------------------------------------------------------------------ addresses
    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def ws_url(self, client_id: str | None = None) -> str:
        url = f"ws://{self.host}:{self.port}/ws"
        return f"{url}?clientId={client_id}" if client_id else url

    # ------------------------------------------------------------------ lifecycle
    def argv(self) -> list[str]:
        return [
            self.python,
            str(self.comfyui_dir / "main.py"),
            "--listen",
            self.host,
            "--port",
            str(self.port),
            "--disable-auto-launch",
            "--base-directory",
            str(self.root),
            "--input-directory",
            str(self.input_dir),
            "--output-directory",
            str(self.output_dir),
            "--temp-directory",
            str(self.root),
            *self.extra_args,
        ]

    def start(self) -> EmulatorProcess:
        env = dict(os.environ)
        env.update(self.faults.env)
        env.update(self.extra_env)
        self.root.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child process
        try:
            self.process = subprocess.Popen(
                self.argv(),
                cwd=str(self.comfyui_dir),
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_default_sigint,
            )
        finally:
            log.close()
        return self

    def wait_ready(self, timeout: float = 20.0) -> EmulatorProcess:
        """Poll GET /system_stats like the worker does; raise EmulatorBootError if the process dies."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise EmulatorBootError(f"emulator exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.base_url + "/system_stats", timeout=1) as resp:
                    if resp.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(0.05)
        raise EmulatorBootError(f"emulator not ready after {timeout}s:\n{self.log_tail()}")

    def returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def wait_exit(self, timeout: float = 10.0) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM, then SIGKILL if it does not go away."""
        if self.process is None or self.process.poll() is not None:
            return self.returncode()
        self.process.terminate()
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(timeout)

    def kill(self) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return self.returncode()
        self.process.kill()
        return self.process.wait(5)

    def restart(self, wait: bool = True, timeout: float = 20.0) -> EmulatorProcess:
        self.stop()
        self.start()
        if wait:
            self.wait_ready(timeout)
        return self

    # ------------------------------------------------------------------ files
    def add_model(self, folder: str, name: str, size: int = 16) -> Path:
        """Create a (fake) model file, e.g. ``add_model("checkpoints", "sd15.safetensors")``."""
        path = self.models_dir / folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\0" * size)
        return path

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_emulator(
    root: str | os.PathLike[str],
    *,
    port: int | None = None,
    extra_args: Iterable[str] = (),
    env: Mapping[str, str] | None = None,
    faults: Mapping[str, Any] | None = None,
    time_scale: float | None = None,
    models: Mapping[str, Iterable[str]] | None = None,
    wait: bool = True,
    timeout: float = 20.0,
    python: str | None = None,
    profile: str = "0.8.0",
) -> EmulatorProcess:
    """Start the emulator as a subprocess on a free port (or ``port``) and, by default, wait until
    GET /system_stats answers.  ``faults`` are written to ``root/faults.json`` first; ``time_scale``
    multiplies all emulated compute time (``COMFY_EMULATOR_TIME_SCALE``); ``models`` creates fake model
    files, e.g. ``{"checkpoints": ["sd15.safetensors"]}``; ``profile`` picks the emulated ComfyUI version
    (``"0.8.0"`` or ``"0.38"``: runs that install root's main.py)."""
    root_path = Path(root)
    root_path.mkdir(parents=True, exist_ok=True)
    all_env = dict(env or {})
    if time_scale is not None:
        all_env[TIME_SCALE_ENV] = str(time_scale)
    emu = EmulatorProcess(
        root_path, port or free_port(), extra_args, all_env, python or sys.executable, profile=profile
    )
    if faults is not None:
        emu.faults.write(faults)
    for folder, names in (models or {}).items():
        for name in names:
            emu.add_model(folder, name)
    emu.start()
    if wait:
        try:
            emu.wait_ready(timeout)
        except EmulatorBootError:
            with contextlib.suppress(Exception):
                emu.stop()
            raise
    return emu
