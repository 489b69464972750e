"""Scorer options as pydantic models: a bad or unknown option is a 400 naming it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from modelcycle.errors import InvalidInput


class ScorerOptions(BaseModel):
    """Base of every built-in scorer's options: unknown keys refused, values frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


OptionsT = TypeVar("OptionsT", bound=ScorerOptions)


def parse_options(model: type[OptionsT], options: Mapping[str, Any], scorer: str) -> OptionsT:
    """``options`` validated as ``model``; ``InvalidInput`` naming each bad option."""
    try:
        return model.model_validate(dict(options))
    except ValidationError as exc:
        known = ", ".join(sorted(field.alias or name for name, field in model.model_fields.items()))
        problems = []
        for error in exc.errors(include_url=False):
            where = ".".join(str(part) for part in error["loc"])
            if error["type"] == "extra_forbidden":
                problems.append(f"unknown option '{where}' (known: {known or 'none'})")
            else:
                problems.append(f"option '{where}': {error['msg']}" if where else error["msg"])
        raise InvalidInput(f"scorer {scorer}: " + "; ".join(problems), param="options") from None
