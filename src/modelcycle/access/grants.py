"""What a key may grant: the keys it creates, rotates or revokes never exceed its own powers.

Keys are managed by maintainers and admins (viewers are read-only, ``app``
keys call models). A key acts only on keys whose role is at or below its own,
and creates or rotates only such keys; a key limited to some deployments
grants at most those deployments. Without these bounds a maintainer could
mint an admin key, and a key limited to one deployment could mint an
unlimited one.
"""

from __future__ import annotations

from modelcycle.access.schemas import Principal
from modelcycle.errors import PermissionDenied
from modelcycle.types import Role

KEY_MANAGER = Role.MAINTAINER
"""The least role that may create, list, rotate and revoke keys."""


def allowlist_to_grant(
    principal: Principal, role: Role, deployments: list[str] | None, *, inherit: bool
) -> list[str] | None:
    """The allowlist of a key ``principal`` creates with ``role`` and ``deployments``.

    ``PermissionDenied`` when that key would exceed the grantor. With
    ``inherit``, an omitted allowlist becomes the grantor's own (creating a
    key); without, it is refused when the grantor has one (rotating an
    unlimited key would hand out an unlimited secret).
    """
    if not principal.role.allows(role):
        raise PermissionDenied(
            f"a '{principal.role}' key may grant roles up to '{principal.role}'; "
            f"a '{role}' key must be created by a key with role '{role}' or higher"
        )
    allowed = principal.deployments
    if allowed is None:
        return deployments
    if deployments is None:
        if inherit:
            return sorted(allowed)
        raise PermissionDenied(
            "this key may call only some deployments; it cannot grant a key that may call all"
        )
    beyond = sorted(set(deployments) - allowed)
    if beyond:
        raise PermissionDenied(
            f"this key may not call {', '.join(beyond)}, so it cannot grant a key that may"
        )
    return deployments


def check_manages(principal: Principal, key_id: int, role: Role) -> None:
    """``PermissionDenied`` unless ``principal`` may revoke or rotate a key with ``role``."""
    if not principal.role.allows(role):
        raise PermissionDenied(
            f"key {key_id} has role '{role}'; a '{principal.role}' key may revoke or rotate "
            f"only keys with role '{principal.role}' or lower"
        )
