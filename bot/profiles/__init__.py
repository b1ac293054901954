"""Interest profiles: learning from messages, recommendations, segments, members' data."""

from bot.profiles.feature import ProfilesFeature
from bot.profiles.recommend import Recommendation
from bot.profiles.segments import Segment, Segments

__all__ = ["ProfilesFeature", "Recommendation", "Segment", "Segments"]
