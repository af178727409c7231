"""A peer's own venv, created from its hash-pinned requirements and reused while they hold.

The venv lives under the cache directory (``.cache/bench-peers/`` in the tree, git-
ignored; ``BENCH_PEER_CACHE`` moves it), named for the peer and a digest of its
requirements file and of this interpreter's version: a changed pin, or another Python,
is another venv. It is marked complete only once pip has finished, and a lock file keeps
two benches (or two test sessions) from building the same one at once.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from bench.harness import ROOT

INSTALL_TIMEOUT_S = 600.0
_COMPLETE = "complete"


def cache_dir() -> Path:
    """Where peers' venvs live: ``BENCH_PEER_CACHE``, else ``.cache/bench-peers/``."""
    configured = os.environ.get("BENCH_PEER_CACHE")
    return Path(configured) if configured else ROOT / ".cache" / "bench-peers"


def venv_dir(name: str, requirements: Path) -> Path:
    digest = hashlib.sha256(requirements.read_bytes())
    digest.update(f"{sys.implementation.cache_tag} {sys.platform}".encode())
    return cache_dir() / f"{name}-{digest.hexdigest()[:16]}"


def ready_python(name: str, requirements: Path) -> Path | None:
    """The interpreter of *name*'s venv if it is built for these requirements, else None."""
    folder = venv_dir(name, requirements)
    return _python(folder) if (folder / _COMPLETE).exists() else None


async def ensure_venv(name: str, requirements: Path, log: Callable[[str], None] = print) -> Path:
    """The interpreter of *name*'s venv, created first if it does not exist yet.

    Creating it needs PyPI (pip, ``--require-hashes``, wheels only). Raises
    ``RuntimeError`` with pip's last words when the install fails.
    """
    folder = venv_dir(name, requirements)
    folder.parent.mkdir(parents=True, exist_ok=True)
    lock_path = folder.parent / f"{folder.name}.lock"
    with lock_path.open("w") as lock:
        # Blocking on the lock in a thread: another builder may hold it for a while.
        await asyncio.to_thread(fcntl.flock, lock, fcntl.LOCK_EX)
        try:
            if (folder / _COMPLETE).exists():
                return _python(folder)
            log(f"  creating the {name} peer's venv in {folder} (pip, from PyPI)")
            _remove_stale(name, keep=folder)
            shutil.rmtree(folder, ignore_errors=True)
            await _run(sys.executable, "-m", "venv", str(folder))
            await _run(
                str(_python(folder)),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--no-deps",
                "--require-hashes",
                "--only-binary=:all:",
                "--requirement",
                str(requirements),
            )
            _mark_complete(folder, requirements)
            return _python(folder)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _mark_complete(folder: Path, requirements: Path) -> None:
    (folder / _COMPLETE).write_text(requirements.read_text())


def _python(folder: Path) -> Path:
    return folder / "bin" / "python"


def _remove_stale(name: str, keep: Path) -> None:
    """Earlier venvs of *name* (older requirements): each is a few dozen MiB."""
    for old in cache_dir().glob(f"{name}-*"):
        if old.is_dir() and old != keep:
            shutil.rmtree(old, ignore_errors=True)


async def _run(*command: str) -> None:
    process = await asyncio.create_subprocess_exec(
        *command,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    try:
        async with asyncio.timeout(INSTALL_TIMEOUT_S):
            output, _ = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise RuntimeError(f"{command[0]} took over {INSTALL_TIMEOUT_S:g} s") from None
    if process.returncode != 0:
        tail = output.decode(errors="replace")[-2000:]
        raise RuntimeError(f"{' '.join(command[:4])} failed ({process.returncode}): {tail}")
