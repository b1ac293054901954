"""The moderators' web dashboard: an HTTP front end over the same features as the commands."""

from adapters.web.server import WebDashboard

__all__ = ["WebDashboard"]
