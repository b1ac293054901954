"""Every Redis key Shopkeep writes, built in one place. Each carries the merchant id.

The only exceptions live under `sk:_global:` and hold routing facts that must be found
before the merchant is known (which merchant a community belongs to).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PREFIX = "sk"
_MERCHANT_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


def validate_merchant_id(merchant_id: str) -> str:
    """Merchant ids are lowercase slugs so that no key of one can alias another's."""
    if not _MERCHANT_ID.match(merchant_id):
        raise ValueError(
            f"merchant id {merchant_id!r} must be 1-63 lowercase letters, digits, '-' or '_'"
        )
    return merchant_id


def community_merchant(community_key: str) -> str:
    """Global: which merchant a community (`discord:123`) belongs to."""
    return f"{PREFIX}:_global:community:{community_key}:merchant"


def merchants() -> str:
    """Global: the set of merchant ids that have any data."""
    return f"{PREFIX}:_global:merchants"


@dataclass(frozen=True)
class Keys:
    """Key builders scoped to one merchant: `Keys("default").faq("returns")`."""

    merchant: str

    def __post_init__(self) -> None:
        validate_merchant_id(self.merchant)

    @property
    def root(self) -> str:
        return f"{PREFIX}:{self.merchant}"

    def pattern(self) -> str:
        """SCAN pattern matching every key of this merchant."""
        return f"{self.root}:*"

    # Merchant configuration
    def persona(self) -> str:
        return f"{self.root}:persona"

    def help_channels(self) -> str:
        return f"{self.root}:help_channels"

    def communities(self) -> str:
        return f"{self.root}:communities"

    def meta(self) -> str:
        return f"{self.root}:meta"

    # Knowledge
    def faq(self, entry_id: str) -> str:
        return f"{self.root}:faq:{entry_id}"

    def faq_ids(self) -> str:
        return f"{self.root}:faq_ids"

    def product(self, sku: str) -> str:
        return f"{self.root}:product:{sku}"

    def product_skus(self) -> str:
        return f"{self.root}:product_skus"

    # Members
    def profile(self, member_key: str) -> str:
        return f"{self.root}:profile:{member_key}"

    def memory(self, member_key: str, channel_key: str) -> str:
        return f"{self.root}:memory:{member_key}:{channel_key}"

    def opted_out(self) -> str:
        return f"{self.root}:opted_out"

    def unanswered(self) -> str:
        return f"{self.root}:unanswered"

    # Limits
    def rate(self, scope: str, window: int) -> str:
        return f"{self.root}:rate:{scope}:{window}"

    def token_budget(self, community_key: str, day: str) -> str:
        return f"{self.root}:tokens:{community_key}:{day}"
