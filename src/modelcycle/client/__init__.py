"""The Python SDK: ``Client`` and ``AsyncClient`` over the management API."""

from modelcycle.client.asyncio import AsyncClient
from modelcycle.client.sync import Client

__all__ = ["AsyncClient", "Client"]
