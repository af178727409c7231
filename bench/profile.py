"""Summarize a raw profile (``--profile``: :mod:`bench.sampler`'s, or py-spy's): where the
server's time went.

::

    python -m bench.profile DIR/P1.txt [--top 25] [--match sql_store]

Each line of a raw profile is a stack (frames separated by ``;``, outermost first) and
how many samples it was seen in. Printed: the share of samples per thread kind (the
event loop, or a worker thread), the functions with the most samples anywhere on the
stack (inclusive), and the frames at the top of the stack (self).
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]
_FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def _function(frame: str) -> str:
    match = _FRAME.match(frame)
    if match is None:
        return frame
    path = match["file"]
    for marker in ("site-packages/", f"{_ROOT}/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{match['function']} ({path})"


def read(path: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks.append(([_function(f) for f in stack.split(";")], int(count)))
    return stacks


def summarize(
    stacks: Iterable[tuple[list[str], int]], *, top: int = 25, match: str | None = None
) -> str:
    total = 0
    threads: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    for frames, count in stacks:
        if match is not None and not any(match in f for f in frames):
            continue
        total += count
        worker = any("WorkerThread.run" in f for f in frames)
        threads["worker threads (to_thread)" if worker else "event loop thread"] += count
        for function in set(frames):
            inclusive[function] += count
        own[frames[-1]] += count
    if not total:
        return "no samples"
    lines = [f"{total} samples" + (f" with {match!r} on the stack" if match else "")]
    lines += [f"  {n / total:6.1%}  {name}" for name, n in threads.most_common()]
    lines.append(f"\ninclusive (top {top}):")
    lines += [f"  {n / total:6.1%}  {name}" for name, n in inclusive.most_common(top)]
    lines.append(f"\nself (top {top}):")
    lines += [f"  {n / total:6.1%}  {name}" for name, n in own.most_common(top)]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile")
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--match", help="only stacks with a frame containing this text")
    args = parser.parse_args(argv)
    print(summarize(read(args.profile), top=args.top, match=args.match))


if __name__ == "__main__":
    main()
