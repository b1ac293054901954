"""Growth and insight: referrals, account linking, analytics, FAQ gaps and the weekly digest."""

from bot.growth.digest import run_weekly_digest, schedule_digest
from bot.growth.feature import GrowthFeature
from bot.growth.linking import canonical_member

__all__ = ["GrowthFeature", "canonical_member", "run_weekly_digest", "schedule_digest"]
