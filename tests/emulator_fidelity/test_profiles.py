"""Profiles: the install roots of the two emulated ComfyUI versions and how each one starts, refuses flags,
locks the asset database and stops (tests/emulator/README.md "Profiles")."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from .support import HERE, Client, EmulatorProcess, with_color, workflow

EMULATOR = HERE.parent / "emulator"
ROOTS = {"0.8.0": EMULATOR, "0.38": EMULATOR / "versions" / "0.38"}
VERSIONS = {"0.8.0": "0.8.0", "0.38": "0.38.1"}
FAST_LOCK = {"assets_lock_wait_s": 0.3}


def run_main(
    profile: str, tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a profile's main.py to completion (with --quick-test-for-ci it exits after start-up)."""
    return subprocess.run(
        [sys.executable, str(ROOTS[profile] / "main.py"), "--base-directory", str(tmp_path), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        cwd=str(ROOTS[profile]),
    )


# --------------------------------------------------------------------------- install roots
@pytest.mark.parametrize("profile", ["0.8.0", "0.38"])
def test_install_root_looks_like_comfyui(profile: str) -> None:
    """main.py, comfyui_version.py and a comfy/cli_args.py whose text names the optional flags the worker
    looks for (src/comfy_serverless/comfy/launch.py _known_flags searches it)."""
    root = ROOTS[profile]
    assert (root / "main.py").is_file()
    version = (root / "comfyui_version.py").read_text()
    assert f'__version__ = "{VERSIONS[profile]}"' in version
    text = (root / "comfy" / "cli_args.py").read_text()
    for flag in ("--listen", "--port", "--user-directory", "--database-url", "--cpu"):
        assert f'"{flag}"' in text
    assert ('"--disable-assets"' in text) is (profile == "0.38")
    assert ('"--normalvram"' in text) is (profile == "0.8.0")
    assert "import argparse" not in text  # a declaration of our own, not ComfyUI's parser


@pytest.mark.parametrize("profile", ["0.8.0", "0.38"])
def test_version_in_log_and_system_stats(profile: str, tmp_path: Path) -> None:
    proc = run_main(profile, tmp_path, "--quick-test-for-ci")
    assert proc.returncode == 0, proc.stderr
    assert f"ComfyUI version: {VERSIONS[profile]}\n" in proc.stderr


def test_profile_env_var_overrides_the_root(tmp_path: Path) -> None:
    proc = run_main("0.8.0", tmp_path, "--quick-test-for-ci", env={"COMFY_EMULATOR_PROFILE": "0.38"})
    assert proc.returncode == 0, proc.stderr
    assert "ComfyUI version: 0.38.1" in proc.stderr


# --------------------------------------------------------------------------- flags per version
@pytest.mark.parametrize(
    ("args", "refused_by", "message"),
    [
        (["--disable-assets"], "0.8.0", "unrecognized arguments: --disable-assets"),
        (["--enable-assets"], "0.8.0", "unrecognized arguments: --enable-assets"),
        (["--offline"], "0.8.0", "unrecognized arguments: --offline"),
        (["--cache-ram", "4", "8"], "0.8.0", "unrecognized arguments: 8"),
        (["--verbose", "DETAIL"], "0.8.0", "argument --verbose: invalid choice: 'DETAIL'"),
        (["--normalvram"], "0.38", "unrecognized arguments: --normalvram"),
        (["--disable-ipex-optimize"], "0.38", "unrecognized arguments: --disable-ipex-optimize"),
    ],
)
def test_flags_differ_between_versions(
    tmp_path: Path, args: list[str], refused_by: str, message: str
) -> None:
    """A flag one version lacks ends it at argparse (exit 2, spec section 9); the other starts."""
    accepted_by = "0.38" if refused_by == "0.8.0" else "0.8.0"
    refused = run_main(refused_by, tmp_path / "a", "--quick-test-for-ci", *args)
    assert refused.returncode == 2
    assert message in refused.stderr
    accepted = run_main(accepted_by, tmp_path / "b", "--quick-test-for-ci", *args)
    assert accepted.returncode == 0, accepted.stderr


def test_cache_ram_takes_at_most_two_numbers(tmp_path: Path) -> None:
    proc = run_main("0.38", tmp_path, "--quick-test-for-ci", "--cache-ram", "1", "2", "3")
    assert proc.returncode == 2
    assert "--cache-ram accepts at most two values: active GB and inactive GB" in proc.stderr


def test_verbose_level_file(tmp_path: Path) -> None:
    """newer --verbose LEVEL FILE adds a log file; the console keeps INFO."""
    log_file = tmp_path / "debug.log"
    proc = run_main("0.38", tmp_path, "--quick-test-for-ci", "--verbose", "DEBUG", str(log_file))
    assert proc.returncode == 0, proc.stderr
    assert "models: " in log_file.read_text()  # a DEBUG line
    assert "models: " not in proc.stderr


def test_list_feature_flags(tmp_path: Path) -> None:
    proc = run_main("0.38", tmp_path, "--list-feature-flags")
    assert proc.returncode == 0
    registry = json.loads(proc.stdout)
    assert registry["show_signin_button"]["type"] == "bool"
    assert proc.stderr == ""


# --------------------------------------------------------------------------- asset database lock
def test_lock_held_by_another_comfyui_stops_startup_until_it_dies(
    make_emulator: Callable[..., EmulatorProcess], tmp_path: Path
) -> None:
    """Two 0.38 ComfyUIs on one user directory: the second one waits for the lock, then ends with
    ASSETS_STARTUP_FAILED: in_use and exit 1 before "Starting server".  The lock is an flock, so once
    the first process is SIGKILLed (no cleanup at all) the OS has dropped it and a new start succeeds."""
    user = tmp_path / "shared-user"
    user.mkdir()
    first = make_emulator(profile="0.38", extra_args=["--user-directory", str(user)])
    second = make_emulator(
        profile="0.38", extra_args=["--user-directory", str(user)], faults=FAST_LOCK, wait=False
    )
    assert second.wait_exit(20) == 1
    log = second.log_text()
    db = user / "comfyui.db"
    expected = (
        "ASSETS_STARTUP_FAILED: in_use\n"
        f"Another ComfyUI is already using this database: '{db}'.\n"
        "Close the other ComfyUI and start this one again.\n"
        "Or give this ComfyUI its own database: --database-url sqlite:///path/to/another.db\n"
        "Or start ComfyUI without the assets system: --disable-assets\n"
    )
    assert expected in log
    assert "Database lock is held; waiting up to 5s for it to be released" in log
    assert "Starting server" not in log
    assert "Traceback" not in log

    assert first.kill() == -signal.SIGKILL
    second.start()
    second.wait_ready()
    assert second.log_text().count("Starting server") == 1


def test_lock_on_a_database_url(make_emulator: Callable[..., EmulatorProcess], tmp_path: Path) -> None:
    """--database-url sqlite:///<path> locks <path>.lock; with an explicit URL the message does not
    suggest one.  An in-memory database and --disable-assets take no lock (the latter warns)."""
    db = tmp_path / "db" / "shared.db"
    url = f"sqlite:///{db}"
    make_emulator(profile="0.38", extra_args=["--database-url", url])
    assert (tmp_path / "db" / "shared.db.lock").is_file()
    blocked = make_emulator(profile="0.38", extra_args=["--database-url", url], faults=FAST_LOCK, wait=False)
    assert blocked.wait_exit(20) == 1
    log = blocked.log_text()
    assert f"ASSETS_STARTUP_FAILED: in_use\nAnother ComfyUI is already using this database: '{db}'." in log
    assert "Or give this ComfyUI its own database" not in log

    make_emulator(profile="0.38", extra_args=["--database-url", "sqlite:///:memory:"])
    without = make_emulator(profile="0.38", extra_args=["--database-url", url, "--disable-assets"])
    assert (
        "Another ComfyUI is already using this install's asset database:\n  " + str(db) in without.log_text()
    )


@pytest.mark.parametrize(
    ("kind", "first_line"),
    [
        ("corrupt", "The asset database '{db}' is corrupt (database disk image is malformed)."),
        ("newer_revision", "The asset database '{db}' was last used by a newer version of ComfyUI"),
        ("missing_packages", "The assets system needs packages that could not be imported: blake3."),
    ],
)
def test_assets_startup_failure_fault(tmp_path: Path, kind: str, first_line: str) -> None:
    faults = tmp_path / "faults.json"
    faults.write_text(json.dumps({"assets_startup_failed": kind}))
    proc = run_main("0.38", tmp_path, env={"COMFY_EMULATOR_FAULTS_FILE": str(faults)})
    assert proc.returncode == 1
    db = tmp_path / "user" / "comfyui.db"
    assert f"ASSETS_STARTUP_FAILED: {kind}\n{first_line.format(db=db)}" in proc.stderr
    assert proc.stderr.rstrip().endswith("Or start ComfyUI without the assets system: --disable-assets")
    assert "Starting server" not in proc.stderr
    if kind == "missing_packages":  # checked before the custom nodes are imported
        assert "Import times for custom nodes" not in proc.stderr
    # the same switch means nothing with the assets system off, or to 0.8.0
    assert run_main("0.38", tmp_path, "--disable-assets", "--quick-test-for-ci").returncode == 0
    assert run_main("0.8.0", tmp_path, "--quick-test-for-ci").returncode == 0


def test_unsupported_database_url(tmp_path: Path) -> None:
    proc = run_main("0.38", tmp_path, "--database-url", "postgresql://db/comfy")
    assert proc.returncode == 1
    assert "ASSETS_STARTUP_FAILED: unsupported_url\n--database-url must start with sqlite:///" in proc.stderr


def test_enable_assets_is_deprecated(tmp_path: Path) -> None:
    proc = run_main("0.38", tmp_path, "--quick-test-for-ci", "--enable-assets")
    assert proc.returncode == 0
    assert (
        "--enable-assets is deprecated and does nothing: the assets system is on unless ComfyUI is "
        "started with --disable-assets." in proc.stderr
    )


# --------------------------------------------------------------------------- port, shutdown
@pytest.mark.parametrize("profile", ["0.8.0", "0.38"])
def test_port_in_use(profile: str, tmp_path: Path) -> None:
    """0.8.0: the OSError traceback; newer server.py L1375-1379: one ERROR line, exit 1, no traceback."""
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        proc = run_main(profile, tmp_path, "--port", str(port), "--disable-auto-launch")
    assert proc.returncode == 1
    if profile == "0.8.0":
        assert "Traceback (most recent call last):" in proc.stderr
        assert "address already in use" in proc.stderr
    else:
        assert "Traceback" not in proc.stderr
        line = (
            f"Port {port} is already in use on address 127.0.0.1. Please close the other application or "
            "use a different port with --port.\n"
        )
        assert proc.stderr.endswith(line)


@pytest.mark.parametrize("profile", ["0.8.0", "0.38"])
async def test_temp_folder_at_shutdown(
    profile: str, make_emulator: Callable[..., EmulatorProcess], session: aiohttp.ClientSession
) -> None:
    """Both empty the temp folder at start; the newer one also deletes it when stopped with SIGINT
    (main.py L682-690), so PreviewImage files must be fetched before ComfyUI stops."""
    emu = make_emulator(profile=profile)
    client = Client(emu, session)
    await client.run(with_color(workflow("preview_image")))
    await client.close()
    assert list(emu.temp_dir.iterdir())
    assert emu.process is not None
    emu.process.send_signal(signal.SIGINT)
    assert await asyncio.to_thread(emu.wait_exit, 10) == 0
    assert "Stopped server" in emu.log_text()
    assert emu.temp_dir.exists() is (profile == "0.8.0")


def test_models_folders(make_emulator: Callable[..., EmulatorProcess], tmp_path: Path) -> None:
    """newer folder_paths.py @1df2885ebd: seven more folders; datasets and fonts live in the base folder."""
    import urllib.request

    new = make_emulator(profile="0.38")
    (new.root / "fonts").mkdir()
    (new.root / "fonts" / "a.ttf").write_bytes(b"0")
    (new.root / "fonts" / "notes.txt").write_bytes(b"0")
    (new.root / "datasets").mkdir()
    (new.root / "datasets" / "d.jsonl").write_bytes(b"0")
    new.add_model("optical_flow", "raft.safetensors")

    def get(emu: EmulatorProcess, path: str) -> object:
        with urllib.request.urlopen(emu.base_url + path, timeout=5) as resp:
            return json.loads(resp.read())

    names = get(new, "/models")
    assert isinstance(names, list)
    added = ["datasets", "background_removal", "frame_interpolation", "geometry_estimation"]
    added += ["optical_flow", "detection", "fonts"]
    assert [n for n in names if n in added] == added
    assert names.index("datasets") == names.index("custom_nodes") + 1
    assert names[-6:] == added[1:]
    assert get(new, "/models/fonts") == ["a.ttf"]
    assert get(new, "/models/datasets") == ["d.jsonl"]
    assert get(new, "/models/optical_flow") == ["raft.safetensors"]
    old = get(make_emulator(), "/models")
    assert isinstance(old, list) and not set(added) & set(old)


def test_log_shows_cache_mode(tmp_path: Path) -> None:
    assert "Using RAM pressure cache." in run_main("0.38", tmp_path, "--quick-test-for-ci").stderr
    classic = run_main("0.38", tmp_path, "--quick-test-for-ci", "--cache-classic").stderr
    assert not re.search(r"Using (RAM pressure|LRU) cache", classic)
