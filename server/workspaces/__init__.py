"""Workspaces from files: applying them, and the tools and brains they declare.

::

    agents.workspace_file   the file format, read and validated (no I/O beyond reading it)
    apply                   a validated spec stored in one transaction
    catalog                 each workspace's current kit (agents, tools, brains) for the runtime
    http_tools              a workspace's HTTP endpoints as tools (httpx, pooled)
    mcp_tools               a workspace's MCP servers' tools (the ``mcp`` SDK)
"""
