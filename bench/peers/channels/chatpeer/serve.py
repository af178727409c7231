"""``python -m chatpeer.serve --port P``: create the tables, then serve on uvicorn.

uvicorn's options are those Switchboard is served with (uvloop, httptools, the sans-I/O
websockets protocol, no per-message deflate, 64 KiB frames, no access log).
"""

from __future__ import annotations

import argparse
import os

import django
import uvicorn
from django.core.management import call_command


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m chatpeer.serve")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatpeer.settings")
    django.setup()
    # The app has no migrations: its two tables are created from the models.
    call_command("migrate", run_syncdb=True, verbosity=0)
    uvicorn.run(
        "chatpeer.asgi:application",
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        ws="websockets-sansio",
        ws_max_size=64 * 1024,
        ws_per_message_deflate=False,
        lifespan="off",
        access_log=False,
        log_level="warning",
        server_header=False,
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
