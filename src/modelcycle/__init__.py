"""modelcycle: deploy, monitor, evaluate and tune the LLMs you run in production.

The public SDK surface: ``Client`` and ``AsyncClient`` talk to a modelcycle
server over HTTP; every error they raise derives from ``ModelcycleError``.
"""

from modelcycle.client import AsyncClient, Client
from modelcycle.errors import (
    AuthenticationError,
    Conflict,
    InvalidInput,
    MissingExtra,
    ModelcycleError,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    ServerError,
    StoreError,
)
from modelcycle.version import __version__

__all__ = [
    "AsyncClient",
    "AuthenticationError",
    "Client",
    "Conflict",
    "InvalidInput",
    "MissingExtra",
    "ModelcycleError",
    "NotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "ServerError",
    "StoreError",
    "__version__",
]
