"""The peer's Django settings: no admin, no sessions, no middleware; SQLite and Redis.

Read from the environment the bench sets: ``DATABASE_URL`` (``sqlite:///PATH``),
``PEER_REDIS_URL``, ``PEER_CHANNEL_LAYER``, ``PEER_SECRET`` (the tokens' HS256 key) and
``PEER_WORKSPACE``.
"""

from __future__ import annotations

import os

DATABASE_PATH = os.environ.get("DATABASE_URL", "sqlite:///peer.db").removeprefix("sqlite:///")
REDIS_URL = os.environ.get("PEER_REDIS_URL", "redis://127.0.0.1:6379/0")
TOKEN_SECRET = os.environ["PEER_SECRET"]
WORKSPACE = os.environ.get("PEER_WORKSPACE", "bench")

# Django refuses to start without one; nothing here signs with it (no sessions, no CSRF).
SECRET_KEY = "chatpeer-has-no-signed-cookies"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = ["chatpeer"]
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "chatpeer.urls"
ASGI_APPLICATION = "chatpeer.asgi.application"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": DATABASE_PATH,
        # The pragmas Switchboard's SQLite store uses: the same durability, so that the
        # comparison is not of fsyncs.
        "OPTIONS": {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL",
            "transaction_mode": "IMMEDIATE",
        },
        # One connection kept for the life of the process, in asgiref's one ORM thread.
        "CONN_MAX_AGE": None,
    }
}

# channels_redis's Pub/Sub layer (``PEER_CHANNEL_LAYER=pubsub``, the bench's choice: the
# faster of the two here) or its original one (``core``, lists and Lua scripts).
if os.environ.get("PEER_CHANNEL_LAYER", "pubsub") == "pubsub":
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL]},
        }
    }
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # Every consumer of the process receives through one Redis key, and a group
            # message beyond its capacity (100 by default) is dropped without a word:
            # with a hundred busy conversations the default loses replies.
            "CONFIG": {"hosts": [REDIS_URL], "capacity": 10_000},
        }
    }

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["stderr"], "level": "WARNING"},
}
