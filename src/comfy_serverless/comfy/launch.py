"""Start the ComfyUI child process. Standard library only, so ``python -m comfy_serverless`` can spawn
ComfyUI before it imports anything heavy and the worker's own start-up overlaps ComfyUI's boot."""

from __future__ import annotations

import collections
import contextlib
import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from ..settings import Settings

comfy_log = logging.getLogger("comfyui")

# ComfyUI prints this once its HTTP site is listening (server.py in 0.3.x and 0.8.x).
READY_MARKER = "To see the GUI go to:"
LOG_TAIL_LINES = 200
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to SIGKILL ComfyUI when the worker dies, however it dies
    (a SIGKILLed or crashed worker must not leave an orphan ComfyUI holding the GPU and the port)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def describe_exit(returncode: int) -> str:
    """Human wording of a process exit status."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        hint = " (often the kernel's out-of-memory killer)" if name == "SIGKILL" else ""
        return f"was killed by {name}{hint}"
    return f"exited with code {returncode}"


class ComfyProcess:
    """One ComfyUI child process with its log captured line by line."""

    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str]):
        self.argv = argv
        self.started_at = time.monotonic()
        self.log_tail: collections.deque[str] = collections.deque(maxlen=LOG_TAIL_LINES)
        self.boot_log: list[str] = []  # every line until ComfyUI said it listens
        self.booted = False
        self.popen = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # only a prctl call runs between fork and exec
        )
        self.pid = self.popen.pid

    def pump(self, on_ready_line: Callable[[], object], on_exit: Callable[[int], None]) -> None:
        """Read the log until EOF in a daemon thread, then report the exit status."""

        def run() -> None:
            stream = self.popen.stdout
            assert stream is not None
            for raw in iter(stream.readline, b""):
                line = raw.decode("utf-8", "replace").rstrip()
                self.log_tail.append(line)
                if not self.booted:
                    self.boot_log.append(line)
                comfy_log.debug("%s", line)
                if READY_MARKER in line:
                    self.booted = True
                    on_ready_line()
            on_exit(self.popen.wait())

        threading.Thread(target=run, name=f"comfyui-log-{self.pid}", daemon=True).start()

    def kill(self) -> None:
        """Kill ComfyUI and anything it started."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)

    def terminate(self, timeout: float = 10.0) -> None:
        """Ask ComfyUI to stop, then kill it if it does not."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            self.popen.wait()


class LaunchError(Exception):
    """ComfyUI cannot be started with these settings; the message says why and what to change."""


def comfy_folders(settings: Settings) -> dict[str, Path]:
    """ComfyUI's input/output/temp folders: the worker's own in managed mode, the configured ones when
    attached."""
    if not settings.attach_mode:
        return {kind: settings.worker_data_dir / kind for kind in ("input", "output", "temp")}
    configured = {
        "input": settings.comfyui_input_dir,
        "output": settings.comfyui_output_dir,
        "temp": settings.comfyui_temp_dir,
    }
    return {kind: path for kind, path in configured.items() if path is not None}


def reset_folders(folders: dict[str, Path]) -> None:
    """Empty the worker's own folders: nothing of an earlier run may reach a new job. ComfyUI must find
    its input folder at boot, or it silently skips node modules that need it."""
    for folder in folders.values():
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True, exist_ok=True)


def _known_flags(comfyui_dir: Path) -> str:
    """The text of ComfyUI's argument parser, to tell which optional flags this version accepts."""
    try:
        return (comfyui_dir / "comfy" / "cli_args.py").read_text(errors="replace")
    except OSError:
        return ""


def comfyui_argv(settings: Settings, folders: dict[str, Path]) -> list[str]:
    """The command line that starts ComfyUI on loopback with the worker's folders."""
    assert settings.comfyui_dir is not None
    argv = [
        settings.comfyui_python,
        str(settings.comfyui_dir / "main.py"),
        "--listen",
        "127.0.0.1",
        "--port",
        str(settings.comfyui_port),
        "--disable-auto-launch",
    ]
    if "input" in folders:
        argv += ["--input-directory", str(folders["input"])]
    if "output" in folders:
        argv += ["--output-directory", str(folders["output"])]
    if "temp" in folders:
        # ComfyUI keeps temp files in <--temp-directory>/temp (main.py joins "temp" on).
        argv += ["--temp-directory", str(folders["temp"].parent)]
    # Keep ComfyUI's own state out of its (possibly read-only, possibly shared) install folder, when
    # this ComfyUI knows the flags: user settings and the database in the worker's own folder.
    # (ComfyUI puts its database in <COMFYUI_DIR>/user whatever --user-directory says. An in-memory
    # database is no answer: SQLAlchemy then closes its connection from another thread after every
    # prompt and ComfyUI logs three "SQLite objects created in a thread" tracebacks, which crowd the
    # log lines a crash report quotes.)
    known = _known_flags(settings.comfyui_dir)
    extra = settings.extra_comfyui_args
    user_dir: Path | None = None
    if "--user-directory" in known and "--user-directory" not in extra and "input" in folders:
        user_dir = folders["input"].parent / "user"
        user_dir.mkdir(parents=True, exist_ok=True)
        argv += ["--user-directory", str(user_dir)]
    if "--database-url" in known and "--database-url" not in extra:
        database = f"sqlite:///{user_dir / 'comfyui.db'}" if user_dir is not None else "sqlite:///:memory:"
        argv += ["--database-url", database]
    # Newer ComfyUI (about 0.38 on) runs an assets system by default: a database with a lock file,
    # background scans of every model and input folder, a walk of the output folder after prompts, and
    # an exit at boot (ASSETS_STARTUP_FAILED) when the database cannot be opened or another process
    # holds its lock. It serves the editor's asset browser, which a worker never shows.
    if (
        "--disable-assets" in known
        and not settings.comfyui_enable_assets
        and not {"--disable-assets", "--enable-assets"} & set(extra)
    ):
        argv.append("--disable-assets")
    if settings.comfyui_extra_model_paths is not None:
        argv += ["--extra-model-paths-config", str(settings.comfyui_extra_model_paths)]
    return argv + extra


def launch(settings: Settings, folders: dict[str, Path]) -> ComfyProcess:
    """Start ComfyUI, or raise LaunchError saying what is wrong with the settings."""
    if settings.comfyui_dir is None or not (settings.comfyui_dir / "main.py").is_file():
        raise LaunchError(
            f"COMFYUI_DIR={settings.comfyui_dir} holds no main.py; set COMFYUI_DIR to the ComfyUI "
            "checkout or COMFYUI_URL to a running ComfyUI"
        )
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    if _port_in_use(settings.comfyui_port):
        raise LaunchError(
            f"port {settings.comfyui_port} on 127.0.0.1 is already taken by another program, so the "
            "worker cannot start its own ComfyUI there; set COMFYUI_PORT to a free port, or COMFYUI_URL "
            "to attach to the ComfyUI that is running"
        )
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    argv = comfyui_argv(settings, folders)
    comfy_log.info("Starting ComfyUI: %s", " ".join(argv))
    try:
        return ComfyProcess(argv, settings.comfyui_dir, env)
    except OSError as exc:
        raise LaunchError(f"ComfyUI could not be started with {settings.comfyui_python}: {exc}") from exc
