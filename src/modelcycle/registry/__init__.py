"""The model registry: models, immutable versions, aliases and lineage."""

from modelcycle.registry.aliases import Aliases, add_lineage_edge
from modelcycle.registry.schemas import (
    Alias,
    AliasMove,
    AliasSet,
    Lineage,
    LineageEdge,
    Model,
    ModelCreate,
    ModelUpdate,
    ModelVersion,
    VersionCreate,
    VersionRef,
)
from modelcycle.registry.service import Registry

__all__ = [
    "Alias",
    "AliasMove",
    "AliasSet",
    "Aliases",
    "Lineage",
    "LineageEdge",
    "Model",
    "ModelCreate",
    "ModelUpdate",
    "ModelVersion",
    "Registry",
    "VersionCreate",
    "VersionRef",
    "add_lineage_edge",
]
