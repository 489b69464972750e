"""The dashboard: server-rendered pages over the same services as the API.

Every page acts as the API key its session was opened with, through the
service layer, so a page can show or change exactly what that key could
through ``/api/v1`` — a viewer posting a maintainer's form directly gets 403.
"""

from modelcycle.ui.app import install_dashboard

__all__ = ["install_dashboard"]
