"""The scripted ``MockBackend`` (kind ``mock``), for tests of code that calls deployments.

Register a version with ``backend="mock"`` and a source such as ``mock://echo``
or ``mock://script?reply=Hi``; see ``modelcycle.backends.mock`` for every option.

It serves every optional feature deterministically, so code that uses them can
be tested without a model: log-probabilities (each word the likeliest token,
its value a function of the word), echo, JSON mode, a word tokenizer with
``/tokenize`` and ``/detokenize`` round trips, token-id prompts, and embeddings
(a unit vector per distinct text); see ``modelcycle.backends.mock_features``.
"""

from modelcycle.backends.mock import MockBackend, MockCall

__all__ = ["MockBackend", "MockCall"]
