"""The moderators' web dashboard, its domain side: sign-in links, sessions, audit, jobs."""

from bot.dashboard.feature import DashboardFeature

__all__ = ["DashboardFeature"]
