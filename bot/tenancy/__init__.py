"""Tenancy: which merchant a message serves, which communities each merchant approved, and
what a member may do there."""

from bot.tenancy.communities import Approval, Communities, CommunityTaken, parse_community
from bot.tenancy.gate import Place, Standing, Tenancy
from bot.tenancy.questions import looks_like_question

__all__ = ["Approval", "Communities", "CommunityTaken", "Place", "Standing", "Tenancy",
           "looks_like_question", "parse_community"]
