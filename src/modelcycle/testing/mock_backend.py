"""The scripted ``MockBackend`` (kind ``mock``), for tests of code that calls deployments.

Register a version with ``backend="mock"`` and a source such as ``mock://echo``
or ``mock://script?reply=Hi``; see ``modelcycle.backends.mock`` for every option.
"""

from modelcycle.backends.mock import MockBackend, MockCall

__all__ = ["MockBackend", "MockCall"]
