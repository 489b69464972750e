"""Test doubles and factories shipped for modelcycle's tests and users' own."""

from modelcycle.testing.factories import (
    KeyPair,
    admin_of,
    make_key,
    make_project,
    make_services,
    make_settings,
    register,
    version_body,
)
from modelcycle.testing.mock_backend import MockBackend, MockCall

__all__ = [
    "KeyPair",
    "MockBackend",
    "MockCall",
    "admin_of",
    "make_key",
    "make_project",
    "make_services",
    "make_settings",
    "register",
    "version_body",
]
