"""What the gateway tests share: an environment with mock versions, keys and SDK clients.

Imported as ``gateway.harness`` (``tests/`` is on ``sys.path``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
import httpx2
import openai
from fastapi import FastAPI

from modelcycle import events
from modelcycle.deploy import Deployment, DeploymentSpec, Route
from modelcycle.hookspecs import hookimpl
from modelcycle.services import Services
from modelcycle.testing import KeyPair, register


class Finished:
    """A plugin that keeps every ``RequestFinished`` event."""

    def __init__(self) -> None:
        self.events: list[events.RequestFinished] = []

    @hookimpl
    def modelcycle_request_finished(self, event: events.RequestFinished) -> None:
        self.events.append(event)


@dataclass
class Env:
    services: Services
    app: FastAPI
    admin: KeyPair
    app_key: KeyPair
    finished: Finished
    clients: list[Any] = field(default_factory=list)

    def version(self, model: str, source: str = "mock://echo", **params: Any) -> str:
        """Register the next version of ``model`` (kind mock) and return ``model@N``."""
        created = register(self.services, self.admin.principal, model, source=source, params=params)
        return f"{model}@{created.version}"

    def deploy(self, name: str, *routes: tuple[str, int], **extra: Any) -> Deployment:
        spec = DeploymentSpec(
            name=name, routes=[Route(target=t, weight=w) for t, w in routes], **extra
        )
        return self.services.deployments.create(self.admin.principal, spec)

    def openai(self, key: str | None = None) -> openai.AsyncOpenAI:
        """The official SDK calling the app in process."""
        http = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=self.app))
        client = openai.AsyncOpenAI(
            base_url="http://modelcycle.test/v1",
            api_key=key or self.app_key.key,
            http_client=http,
            max_retries=0,
        )
        self.clients.append(client)
        return client

    def http(self, key: str | None = None) -> httpx.AsyncClient:
        """A raw HTTP client calling the app in process."""
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app),
            base_url="http://modelcycle.test",
            headers={"Authorization": f"Bearer {key or self.app_key.key}"},
        )
        self.clients.append(client)
        return client
