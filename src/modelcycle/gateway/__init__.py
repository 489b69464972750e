"""The request path of the OpenAI-compatible API: route, call the backend, report."""

from modelcycle.gateway.cache import DeploymentNotFound, Resolver
from modelcycle.gateway.routing import Attempt, RouteKind, choose, plan, sticky_point
from modelcycle.gateway.schemas import (
    ChatCompletionRequest,
    ChatMessage,
    CompletionRequest,
    InferenceRequest,
    StreamOptions,
)
from modelcycle.gateway.service import Gateway, Served, ServedStream

__all__ = [
    "Attempt",
    "ChatCompletionRequest",
    "ChatMessage",
    "CompletionRequest",
    "DeploymentNotFound",
    "Gateway",
    "InferenceRequest",
    "Resolver",
    "RouteKind",
    "Served",
    "ServedStream",
    "StreamOptions",
    "choose",
    "plan",
    "sticky_point",
]
