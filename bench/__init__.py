"""Switchboard's benchmarks: a real server in its own process, driven by real clients.

Run ``python -m bench --help``; the method and the latest figures are in
``docs/BENCHMARKS.md``.
"""
