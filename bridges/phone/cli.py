"""The command line: ``python -m bridges.phone`` and ``switchboard-phone``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from bridges.speech import EngineUnavailable, EspeakSynthesizer, PocketSphinxRecognizer
from bridges.wire import DEVELOPMENT_SECRET

from .server import PhoneBridge


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bridges.phone",
        description="Answer phone calls: a Twilio Media Streams bridge (docs/VOICE.md).",
    )
    parser.add_argument("--server", default="http://127.0.0.1:8000")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument(
        "--public-url",
        required=True,
        help="the bridge as Twilio reaches it, e.g. https://phone.example.org",
    )
    parser.add_argument("--workspace", default="demo", help="the workspace calls are for")
    parser.add_argument(
        "--vocabulary",
        type=Path,
        help="a file of the phrases callers say, one a line (narrows speech-to-text)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    secret = os.environ.get("SWITCHBOARD_SECRET")
    if not secret:
        print("phone bridge: warning: signing with the public development secret", file=sys.stderr)
    signing_secret = os.environ.get("SWITCHBOARD_PHONE_SECRET", "")
    if len(signing_secret.encode()) < 32:
        print(
            "phone bridge: set SWITCHBOARD_PHONE_SECRET (32 bytes or more) to sign streams",
            file=sys.stderr,
        )
        return 2
    try:
        vocabulary = args.vocabulary.read_text().splitlines() if args.vocabulary else None
        bridge = PhoneBridge(
            args.server,
            secret or DEVELOPMENT_SECRET,
            signing_secret,
            args.public_url,
            workspace=args.workspace,
            twilio_auth_token=os.environ.get("TWILIO_AUTH_TOKEN") or None,
            stt=PocketSphinxRecognizer(vocabulary),
            tts=EspeakSynthesizer(),
        )
    except (OSError, EngineUnavailable) as exc:
        print(f"phone bridge: {exc}", file=sys.stderr)
        return 2
    asyncio.run(_serve(bridge, args.host, args.port))
    return 0


async def _serve(bridge: PhoneBridge, host: str, port: int) -> None:
    server = await bridge.serve(host, port)
    print(f"phone bridge: listening on ws://{host}:{port}/twilio/stream", file=sys.stderr)
    await server.serve_forever()
