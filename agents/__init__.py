"""The Switchboard runtime: conversations whose agents hand slow work to sub-agents.

Nothing here imports a web framework, a database driver or Redis: storage, the bus
and the audit trail are reached through the ports in :mod:`agents.ports`.
"""

from __future__ import annotations
