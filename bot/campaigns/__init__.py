"""Content posts and campaigns: drafted by the model, approved by moderators, posted once."""

from bot.campaigns.feature import CampaignFeature
from bot.campaigns.scheduler import run_campaign

__all__ = ["CampaignFeature", "run_campaign"]
