"""Peers: other servers speaking the same protocol subset, which the bench drives with
the same clients (P7). Each lives in a folder of its own with a pinned requirements file,
and runs in a venv the bench creates for it (:mod:`bench.peers.venv`)."""
