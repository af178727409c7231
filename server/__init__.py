"""The Switchboard server: the edge around the runtime.

Sockets, the HTTP API, authentication, settings, storage and the bus between nodes.
Nothing outside this package imports it except its entry points and the tests.
"""

from __future__ import annotations
