"""``python -m bridges.phone``: the Twilio Media Streams bridge (docs/VOICE.md)."""

from __future__ import annotations

import sys

from .cli import main

sys.exit(main())
