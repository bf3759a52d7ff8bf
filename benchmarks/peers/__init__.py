"""Peer policy engines on the same policy: the shared model and one translator per engine.

`policy.py` generates a policy family every peer can express faithfully (one in-memory model,
seeded and deterministic) and the requests that exercise it. `rules_text.py` (with
`gavel_peer.py`), `cedar_peer.py`, `rego_peer.py`, `casbin_peer.py` and `cerbos_peer.py` turn
the model into each engine's policy language and decide a common request dict with that engine.
`servers.py` runs `gavel serve` and the Cerbos server for the gRPC comparison. The entry point
is `benchmarks/peers_bench.py`.
"""
