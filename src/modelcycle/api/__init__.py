"""The HTTP API: management routes under /api/v1, probes, error mapping."""

from modelcycle.api.app import create_app

__all__ = ["create_app"]
