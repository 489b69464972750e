"""Detector options as pydantic models: unknown or wrong options are a 400 naming the option."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from modelcycle.errors import InvalidInput


class DetectorOptions(BaseModel):
    """Base of every built-in detector's options: unknown keys are refused, values frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


OptionsT = TypeVar("OptionsT", bound=DetectorOptions)


def parse_options(model: type[OptionsT], options: Mapping[str, Any], detector: str) -> OptionsT:
    """``options`` validated as ``model``; ``InvalidInput`` listing each bad option."""
    try:
        return model.model_validate(dict(options))
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False):
            where = ".".join(str(part) for part in error["loc"])
            problems.append(f"{where}: {error['msg']}" if where else error["msg"])
        raise InvalidInput(f"{detector}: " + "; ".join(problems)) from None
