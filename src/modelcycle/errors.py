"""The one exception hierarchy of modelcycle.

Every error carries a message that says what to do next. The API maps each
class to one HTTP status and one JSON error shape (``api/errors.py``); the CLI
prints the message on one line and exits non-zero.

::

    ModelcycleError
    ├── InvalidInput          400  bad names, wrong types, unusable values
    │   ├── UpstreamRejected  4xx  an upstream refused the request itself (its status passed on)
    │   └── GuardBlocked      400  a deployment's guard policy refused the input (content_filter)
    ├── AuthenticationError   401  missing, unknown, expired or revoked key
    ├── PermissionDenied      403  the key's role may not do this
    ├── NotFound              404  unknown model, version, alias, key...
    ├── Conflict              409  duplicates, or a delete refused while in use
    ├── PayloadTooLarge       413  request body over the configured limit
    ├── RateLimited           429  a rate or concurrency limit; ``headers`` say when to retry
    ├── MissingExtra          500  an optional dependency is not installed
    ├── StoreError            503  the database is unreachable or not migrated
    ├── GuardUnavailable      503  a deployment's guard policy cannot be loaded
    ├── UpstreamError         502  a backend (model engine, upstream API) failed
    │   └── UpstreamTimeout   504  a backend did not answer within the deployment's timeout
    └── ServerError           502  an error reported by a modelcycle server (SDK side)
"""

from __future__ import annotations

from collections.abc import Mapping


class ModelcycleError(Exception):
    """Base class of every error raised by modelcycle."""

    status_code: int = 500
    error_type: str = "server_error"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code
        self.headers: dict[str, str] = dict(headers or {})
        """HTTP headers the error answer carries (``Retry-After`` on a 429, say)."""


class InvalidInput(ModelcycleError):
    """The request or argument is malformed; the message names what to fix."""

    status_code = 400
    error_type = "invalid_request_error"


class UpstreamRejected(InvalidInput):
    """An upstream API refused the request itself (a 400 or 422, say): its status is passed on.

    Like any ``InvalidInput`` it is neither retried nor sent to a fallback: another
    target would refuse the same request.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int = 400,
        param: str | None = None,
        code: str | None = None,
    ):
        super().__init__(message, param=param, code=code)
        self.status_code = status_code


class GuardBlocked(InvalidInput):
    """A deployment's guard policy refused the request (OpenAI's code ``content_filter``).

    The message names the deployment and the kinds of finding, never the text matched.
    """

    def __init__(self, message: str, *, param: str | None = None):
        super().__init__(message, param=param, code="content_filter")


class AuthenticationError(ModelcycleError):
    """No valid API key was presented."""

    status_code = 401
    error_type = "authentication_error"


class PermissionDenied(ModelcycleError):
    """The API key is valid but its role does not allow the action."""

    status_code = 403
    error_type = "permission_error"


class NotFound(ModelcycleError):
    """The named resource does not exist in the caller's project."""

    status_code = 404
    error_type = "not_found_error"


class Conflict(ModelcycleError):
    """The action conflicts with the current state (duplicate, in use)."""

    status_code = 409
    error_type = "conflict_error"


class PayloadTooLarge(ModelcycleError):
    """The request body exceeds the configured maximum size."""

    status_code = 413
    error_type = "invalid_request_error"


class RateLimited(ModelcycleError):
    """A rate or concurrency limit was reached; ``headers`` carry ``Retry-After``."""

    status_code = 429
    error_type = "rate_limit_error"


class MissingExtra(ModelcycleError):
    """An optional dependency is missing; the message gives the pip command."""

    status_code = 500
    error_type = "server_error"

    def __init__(self, module: str, extra: str):
        super().__init__(
            f"{module} is not installed; run: pip install 'modelcycle[{extra}]'",
            code="missing_extra",
        )
        self.module = module
        self.extra = extra


class StoreError(ModelcycleError):
    """The database cannot serve the request (unreachable, not migrated)."""

    status_code = 503
    error_type = "server_error"


class GuardUnavailable(ModelcycleError):
    """A deployment names a guard policy that cannot be loaded.

    Its requests are refused (fail closed) until the policy exists again or the
    deployment names another.
    """

    status_code = 503
    error_type = "server_error"

    def __init__(self, message: str):
        super().__init__(message, code="guard_unavailable")


class UpstreamError(ModelcycleError):
    """A backend failed to serve a request (after retries and fallbacks)."""

    status_code = 502
    error_type = "upstream_error"


class UpstreamTimeout(UpstreamError):
    """A backend did not answer within the deployment's ``timeout_s``."""

    status_code = 504


class ServerError(ModelcycleError):
    """A modelcycle server answered with an error the SDK cannot map."""

    status_code = 502
    error_type = "server_error"


__all__ = [
    "AuthenticationError",
    "Conflict",
    "GuardBlocked",
    "GuardUnavailable",
    "InvalidInput",
    "MissingExtra",
    "ModelcycleError",
    "NotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "RateLimited",
    "ServerError",
    "StoreError",
    "UpstreamError",
    "UpstreamRejected",
    "UpstreamTimeout",
]
