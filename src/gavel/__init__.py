"""Gavel: a policy decision point for the actions of AI agents.

`from gavel import Engine` is the embedding API (see `gavel.api`).
"""

from __future__ import annotations

__all__ = ["Decision", "Engine", "InvalidInput", "PolicyError"]


def __getattr__(name: str):
    # Lazy, so that importing a subpackage (e.g. the generated gRPC code) stays cheap.
    if name in __all__:
        from gavel import api

        return getattr(api, name)
    raise AttributeError(f"module 'gavel' has no attribute {name!r}")
