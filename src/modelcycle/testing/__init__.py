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

__all__ = [
    "KeyPair",
    "admin_of",
    "make_key",
    "make_project",
    "make_services",
    "make_settings",
    "register",
    "version_body",
]
