"""Fixtures for the fidelity tests: a shared emulator subprocess, private emulators for boot/crash
faults, and clients bound to them."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from .support import SHARED_TIME_SCALE, Client, EmulatorProcess, start_emulator


def _prepare_models(emu: EmulatorProcess) -> None:
    emu.add_model("checkpoints", "random_sd15_arch.safetensors", size=4096)
    emu.add_model("upscale_models", "tiny_random_compact_x2.safetensors", size=1024)


@pytest.fixture(scope="session")
def shared_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    root = tmp_path_factory.mktemp("shared-emulator")
    emu = start_emulator(root, faults={"time_scale": SHARED_TIME_SCALE}, wait=False)
    _prepare_models(emu)
    emu.wait_ready()
    yield emu
    emu.stop()


@pytest.fixture
async def client(shared_emulator: EmulatorProcess) -> AsyncIterator[Client]:
    """A client of the shared emulator; the output cache is cleared first so tests do not see each
    other's cached nodes, and faults are reset to the shared defaults."""
    shared_emulator.faults.write({"time_scale": SHARED_TIME_SCALE})
    async with aiohttp.ClientSession() as session:
        c = Client(shared_emulator, session)
        await c.clear_cache()
        yield c
        await c.close()
    assert shared_emulator.returncode() is None, (shared_emulator.returncode(), shared_emulator.log_tail())


@pytest.fixture(scope="session")
def shared_emulator_038(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    """One emulator of the "0.38" profile (ComfyUI 0.38.1, assets system on) for the HTTP/WS tests."""
    root = tmp_path_factory.mktemp("shared-emulator-038")
    emu = start_emulator(root, faults={"time_scale": SHARED_TIME_SCALE}, wait=False, profile="0.38")
    _prepare_models(emu)
    emu.wait_ready()
    yield emu
    emu.stop()


@pytest.fixture
async def client038(shared_emulator_038: EmulatorProcess) -> AsyncIterator[Client]:
    """Like ``client``, bound to the shared "0.38" emulator."""
    shared_emulator_038.faults.write({"time_scale": SHARED_TIME_SCALE})
    async with aiohttp.ClientSession() as session:
        c = Client(shared_emulator_038, session)
        await c.clear_cache()
        yield c
        await c.close()
    assert shared_emulator_038.returncode() is None, (
        shared_emulator_038.returncode(),
        shared_emulator_038.log_tail(),
    )


@pytest.fixture
def make_emulator(tmp_path: Path) -> Iterator[Callable[..., EmulatorProcess]]:
    """Start private emulators (for boot/crash faults and command-line tests); all stopped at the end."""
    started: list[EmulatorProcess] = []
    counter = itertools.count()

    def make(**kwargs: Any) -> EmulatorProcess:
        root = kwargs.pop("root", None) or tmp_path / f"emu{next(counter)}"
        emu = start_emulator(root, **kwargs)
        started.append(emu)
        return emu

    yield make
    for emu in started:
        emu.stop()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """No keep-alive: private emulators get restarted on the same port."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
        yield s
