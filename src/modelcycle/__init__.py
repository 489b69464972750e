"""modelcycle: deploy, monitor, evaluate and tune the LLMs you run in production.

The public SDK surface: ``Client`` and ``AsyncClient`` talk to a modelcycle
server over HTTP; every error they raise derives from ``ModelcycleError``.
``trace`` (a ``Tracer``) records the application's own spans and sends them to
the server's OTLP endpoint.
"""

from modelcycle.client import AsyncClient, Client
from modelcycle.client.tracing import Tracer, trace
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
    "Tracer",
    "__version__",
    "trace",
]
