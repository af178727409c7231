"""The ASGI application: Django for HTTP, the consumer for the conversation socket."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatpeer.settings")
# Django is set up before anything imports a model (the consumer does).
django_application = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from chatpeer.consumers import ConversationConsumer  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_application,
        "websocket": URLRouter(
            [path("v1/conversations/<str:conversation_id>/ws", ConversationConsumer.as_asgi())]
        ),
    }
)
