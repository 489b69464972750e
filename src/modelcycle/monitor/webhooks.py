"""Webhook delivery of alert transitions: signed JSON POSTs, retried, never unbounded.

A delivery is tried at most ``tries`` times, ``timeout_s`` each, with an
exponential pause between tries; connection failures, timeouts, 408, 425, 429
and 5xx answers are retried, any other answer is final. Redirects are not
followed (a webhook that redirects elsewhere could be steered at internal
addresses), and the URL is never logged: it may hold a credential. When
private addresses are not allowed, the host is resolved right before sending
and refused if any of its addresses is loopback, private, link-local or
otherwise not globally routable.

Signatures follow the common ``t=<unix seconds>,v1=<hex>`` scheme: ``v1`` is
the HMAC-SHA256, keyed by the channel's secret, of ``"<t>.<raw body>"``; a
receiver recomputes it and rejects old timestamps to stop replays
(``verify_signature``).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

from modelcycle.access.secrets import SecretCipher
from modelcycle.monitor.alert_rules import ChannelInfo, LogChannel, WebhookChannel, shown_url
from modelcycle.version import __version__

SIGNATURE_HEADER = "X-Modelcycle-Signature"
EVENT_HEADER = "X-Modelcycle-Event"
DELIVERY_HEADER = "X-Modelcycle-Delivery"
DEFAULT_TOLERANCE_S = 300
_RETRIED_STATUS = frozenset({408, 425, 429})
_ERROR_CHARS = 300


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """A decrypted webhook channel: where to POST, extra headers, the signing secret."""

    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    secret: str | None = None


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """How one delivery ended."""

    ok: bool
    attempts: int
    status_code: int | None = None
    error: str | None = None


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Modelcycle-Signature`` value of ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def verify_signature(
    secret: str,
    header: str,
    body: bytes,
    *,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> bool:
    """Whether ``header`` signs ``body`` with ``secret`` within ``tolerance_s`` of ``now``.

    For receivers written in Python; ``docs/alerts.md`` shows the same check
    in a few lines for any language.
    """
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return False
    expected = sign(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, fields.get("v1", ""))


def private_address(host: str) -> bool:
    """Whether ``host`` is an IP literal (or ``localhost``) that is not globally routable."""
    lowered = host.lower().rstrip(".")
    if lowered == "localhost" or lowered.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(lowered.strip("[]"))
    except ValueError:
        return False
    return _not_global(address)


def _not_global(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not address.is_global or address.is_multicast


def resolves_to_private(host: str, port: int) -> str | None:
    """The first non-global address ``host`` resolves to, or ``None``."""
    if private_address(host):
        return host
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return None  # the delivery itself will fail and say why
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if _not_global(address):
            return str(address)
    return None


class WebhookSender:
    """POSTs JSON bodies to webhook targets with retries; thread-safe."""

    def __init__(
        self,
        *,
        timeout_s: float,
        allow_private: bool,
        tries: int = 3,
        backoff_s: float = 0.5,
        transport: httpx.BaseTransport | None = None,
    ):
        self.timeout_s = timeout_s
        self.allow_private = allow_private
        self.tries = tries
        self.backoff_s = backoff_s
        self._transport = transport

    def send(self, target: WebhookTarget, body: bytes, *, delivery_id: str) -> DeliveryResult:
        """Deliver ``body``; never raises, the result says how it went."""
        refusal = self._refusal(target.url)
        if refusal is not None:
            return DeliveryResult(ok=False, attempts=0, error=refusal)
        result = DeliveryResult(ok=False, attempts=0, error="not attempted")
        # The transport itself, not httpx.Client: the client logs every request's full URL
        # at INFO, and a webhook URL may hold a credential. A transport never redirects.
        with self._transport or httpx.HTTPTransport() as transport:
            for attempt in range(1, self.tries + 1):
                result, retry = self._attempt(transport, target, body, delivery_id, attempt)
                if not retry or attempt == self.tries:
                    break
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
        return result

    def _refusal(self, url: str) -> str | None:
        if self.allow_private:
            return None
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        found = resolves_to_private(host, port)
        if found is None:
            return None
        return (
            f"refused: the webhook host resolves to a private address ({found}) and "
            "webhook_allow_private is off"
        )

    def _attempt(
        self,
        transport: httpx.BaseTransport,
        target: WebhookTarget,
        body: bytes,
        delivery_id: str,
        attempt: int,
    ) -> tuple[DeliveryResult, bool]:
        headers = {
            **target.headers,
            "Content-Type": "application/json",
            "User-Agent": f"modelcycle/{__version__}",
            EVENT_HEADER: "alert",
            DELIVERY_HEADER: delivery_id,
        }
        if target.secret:
            headers[SIGNATURE_HEADER] = sign(target.secret, int(time.time()), body)
        request = httpx.Request(
            "POST",
            target.url,
            headers=headers,
            content=body,
            extensions={"timeout": httpx.Timeout(self.timeout_s).as_dict()},
        )
        try:
            response = transport.handle_request(request)
            try:
                response.read()
            finally:
                response.close()
        except httpx.TimeoutException:
            return DeliveryResult(
                False, attempt, error=f"timed out after {self.timeout_s:g} s"
            ), True
        except httpx.HTTPError as exc:
            # The URL may hold a credential: it never goes into a stored error.
            reason = f"{type(exc).__name__}: {exc}".replace(target.url, "<url>")[:_ERROR_CHARS]
            return DeliveryResult(False, attempt, error=f"connection failed ({reason})"), True
        status = response.status_code
        if 200 <= status < 300:
            return DeliveryResult(True, attempt, status_code=status), False
        retry = status >= 500 or status in _RETRIED_STATUS
        return DeliveryResult(False, attempt, status_code=status, error=f"HTTP {status}"), retry


# -- channels at rest ----------------------------------------------------------------------


def seal_channel(cipher: SecretCipher, channel: WebhookChannel | LogChannel) -> dict[str, Any]:
    """The stored form of a channel: a webhook's URL, headers and secret encrypted."""
    if isinstance(channel, LogChannel):
        return {"type": "log"}
    secret = channel.secret.get_secret_value() if channel.secret is not None else None
    plain = {"url": channel.url, "headers": channel.headers, "secret": secret}
    return {
        "type": "webhook",
        "target": shown_url(channel.url),
        "headers": sorted(channel.headers),
        "signed": secret is not None,
        "sealed": cipher.encrypt(orjson.dumps(plain).decode("utf-8")).decode("ascii"),
    }


def channel_info(stored: Mapping[str, Any]) -> ChannelInfo:
    """What the API shows of a stored channel."""
    if stored.get("type") != "webhook":
        return ChannelInfo(type="log")
    return ChannelInfo(
        type="webhook",
        target=stored.get("target"),
        headers=list(stored.get("headers") or []),
        signed=bool(stored.get("signed")),
    )


def unseal(cipher: SecretCipher, stored: Mapping[str, Any], rule: str) -> WebhookTarget:
    """The webhook behind a stored channel; ``StoreError`` when the key cannot decrypt it."""
    plain = orjson.loads(cipher.decrypt(str(stored["sealed"]).encode("ascii"), f"{rule} webhook"))
    return WebhookTarget(url=plain["url"], headers=plain["headers"], secret=plain["secret"])
