"""OUTPUT_ARCHIVE_DIR: a copy of every delivered output in ``<dir>/<job id>/`` (opt-in, for local runs
and Docker Compose). Copies run in a thread, off the core's event loop."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Sequence
from pathlib import Path

from ..errors import OutputError
from ..media.outputs import OutputText
from .results import LocalOutput


def job_folder_name(job_id: str) -> str:
    """A job id as a single folder name."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in job_id).strip(".") or "job"


def _copy_all(root: Path, outputs: Sequence[LocalOutput], texts: Sequence[OutputText]) -> None:
    for item in outputs:
        target = (root / item.subfolder / item.output.filename).resolve()
        if not target.is_relative_to(root.resolve()):
            raise OSError(
                f"{item.label} names a path outside the archive: {item.subfolder}/{item.output.filename}"
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(item.path, target)
    for index, text in enumerate(texts):
        root.mkdir(parents=True, exist_ok=True)
        (root / f"text_{text.node_id}_{index}.txt").write_text(text.text, encoding="utf-8")


async def archive_outputs(
    archive_dir: Path, job_id: str, outputs: Sequence[LocalOutput], texts: Sequence[OutputText]
) -> None:
    """Copy the job's delivered files (as delivered: converted ones converted) and texts."""
    try:
        await asyncio.to_thread(_copy_all, archive_dir / job_folder_name(job_id), outputs, texts)
    except OSError as exc:
        raise OutputError(
            f"outputs could not be copied to OUTPUT_ARCHIVE_DIR {archive_dir}: {exc}",
            details={"output_archive_dir": str(archive_dir)},
        ) from exc
