"""Ids (agents.models.new_id): unguessable, unique, and never shared with a fork."""

from __future__ import annotations

import os
import re

from agents.models import new_id

ID = re.compile(r"^task_[A-Za-z0-9_-]{22}$")  # 128 bits, URL-safe base64, no padding


def test_ids_are_128_random_bits_in_url_safe_base64() -> None:
    ids = [new_id("task") for _ in range(10_000)]
    assert all(ID.match(i) for i in ids)
    assert len(set(ids)) == len(ids)
    # Bits are not all alike: every character of the alphabet turns up.
    assert len({c for i in ids for c in i[5:]}) == 64


def test_a_forked_child_never_draws_its_parents_next_ids() -> None:
    new_id("warm")  # the pool holds bytes now
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, to the parent
        try:
            os.write(write, " ".join(new_id("task") for _ in range(50)).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = set(pipe.read().split())
    os.waitpid(pid, 0)
    parent = {new_id("task") for _ in range(50)}
    assert len(child) == 50
    assert not child & parent
