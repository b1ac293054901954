"""Every Redis key Shopkeep writes, built in one place. Each carries the merchant id.

The only exceptions live under `sk:_global:` and hold routing facts that must be found
before the merchant is known (which merchant approved a community, a community's pending
setup request, setup codes), and the LM service's
request streams under `sk:lm:` (`lm_service/wire.py`: `lm_service` may not import `bot`, and
model requests carry no merchant data beyond the prompt itself).
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


def community_request(community_key: str) -> str:
    """Global: a community's admin asked to be connected (`/setup` without a code): who, when."""
    return f"{PREFIX}:_global:community:{community_key}:request"


def community_requests() -> str:
    """Global: sorted set of communities waiting for approval (score: when they asked)."""
    return f"{PREFIX}:_global:community_requests"


def community_hinted(community_key: str) -> str:
    """Global: set once the admins of an unapproved community were told how to set it up."""
    return f"{PREFIX}:_global:community:{community_key}:hinted"


def community_setup_tries(community_key: str) -> str:
    """Global: wrong setup codes typed in a community this hour (guessing is slowed down)."""
    return f"{PREFIX}:_global:community:{community_key}:setup_tries"


def setup_code(code: str) -> str:
    """Global: a one-time setup code → the merchant it connects a community to (expires)."""
    return f"{PREFIX}:_global:setup_code:{code}"


def merchants() -> str:
    """Global: the set of merchant ids that have any data."""
    return f"{PREFIX}:_global:merchants"


# Telegram adapter (issue 7): one bot's bookkeeping, needed before any merchant is known
def telegram(bot_id: str, what: str) -> str:
    """Global, per bot: `offset` (next getUpdates offset), `pending` (hash of updates received
    but not finished), `update:<id>` (claim/done marker), `callback:<id>` (long button
    actions), `flood:<scope>` (send windows), `flood:pause`, `sent:<idempotency key>`."""
    return f"{PREFIX}:_global:telegram:{bot_id}:{what}"


# Discord adapter (issue 8): one application's bookkeeping, needed before any merchant is known
def discord(application_id: str, what: str) -> str:
    """Global, per application: `commands:<guild id>` (digest of the slash commands last
    synced to that guild, so a restart does not re-sync unchanged commands)."""
    return f"{PREFIX}:_global:discord:{application_id}:{what}"


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
        """Set of the community keys this merchant approved (`telegram:-100123`)."""
        return f"{self.root}:communities"

    def community_approvals(self) -> str:
        """Hash: approved community key → how, by whom and when (JSON), for listing."""
        return f"{self.root}:community_approvals"

    def channel_communities(self) -> str:
        """Hash: channel key → the community it belongs to (a Discord channel id alone does
        not say its guild), so that places can be checked against the approved ones."""
        return f"{self.root}:channel_communities"

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

    # Knowledge index (issue 5): stored embeddings and a counter bumped on every change
    def vectors(self) -> str:
        return f"{self.root}:vectors"

    def knowledge_version(self) -> str:
        return f"{self.root}:knowledge_version"

    # Members
    def profile(self, member_key: str) -> str:
        return f"{self.root}:profile:{member_key}"

    def memory(self, member_key: str, channel_key: str) -> str:
        return f"{self.root}:memory:{member_key}:{channel_key}"

    def opted_out(self) -> str:
        return f"{self.root}:opted_out"

    def unanswered(self) -> str:
        return f"{self.root}:unanswered"

    # Profiles (issue 6): an index of known members (score = last seen), members whose summary
    # is stale (score = when it went stale), the ingestion spill stream, /forgetme confirmations
    def profile_index(self) -> str:
        return f"{self.root}:profile_index"

    def profile_dirty(self) -> str:
        return f"{self.root}:profile_dirty"

    def profile_ingest(self) -> str:
        return f"{self.root}:profile_ingest"

    def forget_pending(self, member_key: str) -> str:
        return f"{self.root}:forget_pending:{member_key}"

    # Limits
    def rate(self, scope: str, window: int) -> str:
        return f"{self.root}:rate:{scope}:{window}"

    def token_budget(self, community_key: str, day: str) -> str:
        return f"{self.root}:tokens:{community_key}:{day}"

    # Growth: analytics, referrals, account linking, FAQ gaps, digest (issue 9)
    def stats_counts(self, day: str) -> str:
        """Hash of per-day counters (`messages:telegram`, `answered:discord`, ...)."""
        return f"{self.root}:stats:{day}:counts"

    def stats_active(self, day: str, platform: str) -> str:
        """Set of the members (canonical ids) active on a platform that day."""
        return f"{self.root}:stats:{day}:active:{platform}"

    def stats_ranked(self, day: str, what: str) -> str:
        """Sorted set of counts per item that day (`sources`, `interests`)."""
        return f"{self.root}:stats:{day}:{what}"

    def stats_scratch(self) -> str:
        """Set written and deleted inside one MULTI while a report counts unions."""
        return f"{self.root}:stats:scratch"

    def stats_labels(self) -> str:
        return f"{self.root}:stats:labels"

    def first_seen(self) -> str:
        return f"{self.root}:growth:first_seen"

    def referral_codes(self) -> str:
        """Hash: referral code → referrer member key."""
        return f"{self.root}:ref:codes"

    def referral_code_of(self) -> str:
        """Hash: referrer member key → their referral code."""
        return f"{self.root}:ref:code_of"

    def referral(self, invitee_key: str) -> str:
        return f"{self.root}:ref:invitee:{invitee_key}"

    def referral_invitees(self) -> str:
        return f"{self.root}:ref:invitees"

    def referral_pending(self) -> str:
        return f"{self.root}:ref:pending"

    def referral_invites(self) -> str:
        """Hash: a platform invite (`discord:<invite code>`) → the referral code it carries."""
        return f"{self.root}:ref:invites"

    def referral_board(self, period: str) -> str:
        """Sorted set of credited referrals per referrer: `all` or a month `2026-11`."""
        return f"{self.root}:ref:board:{period}"

    def link_code(self, code: str) -> str:
        return f"{self.root}:link:code:{code}"

    def identity(self) -> str:
        """Hash: member key → the canonical member key of its linked person."""
        return f"{self.root}:link:identity"

    def gap(self, gap_id: str) -> str:
        return f"{self.root}:gap:{gap_id}"

    def gaps_resolved(self) -> str:
        return f"{self.root}:gap:resolved"

    def digest_channel(self) -> str:
        return f"{self.root}:digest:channel"

    def digest_lock(self, week_id: str) -> str:
        return f"{self.root}:digest:{week_id}:lock"

    def digest_done(self, week_id: str) -> str:
        return f"{self.root}:digest:{week_id}:done"

    # Campaigns and content posts (bot/campaigns)
    def campaign(self, name: str) -> str:
        return f"{self.root}:campaign:{name}"

    def campaign_names(self) -> str:
        return f"{self.root}:campaign_names"

    def campaign_runs(self, name: str) -> str:
        """Sorted set: run id (the scheduled ISO time) → scheduled timestamp."""
        return f"{self.root}:campaign:{name}:runs"

    def campaign_run(self, name: str, run_id: str) -> str:
        """Hash: the run's status, counts and notes."""
        return f"{self.root}:campaign:{name}:run:{run_id}"

    def campaign_deliveries(self, name: str, run_id: str) -> str:
        """Hash: target key → delivery record (JSON), one per channel or member."""
        return f"{self.root}:campaign:{name}:run:{run_id}:deliveries"

    def campaign_lock(self, name: str, run_id: str) -> str:
        return f"{self.root}:campaign:{name}:run:{run_id}:lock"

    def campaign_channels(self) -> str:
        """Set of channel keys (`discord:123`) the bot has seen, i.e. that campaigns may target."""
        return f"{self.root}:campaign_channels"

    def campaign_dm_log(self, member_key: str) -> str:
        """Sorted set: campaign run → time a campaign DM went to this member (frequency cap)."""
        return f"{self.root}:campaign_dm:{member_key}"

    def offers_opt_in(self) -> str:
        """Set of member keys who asked to receive offers by direct message."""
        return f"{self.root}:offers_opt_in"

    def recent_questions(self) -> str:
        """Capped list of recent member questions (JSON), material for the weekly roundup."""
        return f"{self.root}:recent_questions"

    def post_draft(self, draft_id: str) -> str:
        return f"{self.root}:post_draft:{draft_id}"

    # Store connector (issue 20): order conversations (short TTL, no order data, the email
    # only as a keyed hash), lookup attempt windows, and the catalog sync's lock and status
    def order_conversation(self, member_key: str) -> str:
        return f"{self.root}:order:conv:{member_key}"

    def order_verified(self, member_key: str) -> str:
        return f"{self.root}:order:verified:{member_key}"

    def order_attempts(self, scope: str, window: int) -> str:
        return f"{self.root}:order:attempts:{scope}:{window}"

    def catalog_sync(self) -> str:
        """Hash: the last catalog sync's time, counts or error."""
        return f"{self.root}:catalog_sync"

    def catalog_sync_lock(self) -> str:
        return f"{self.root}:catalog_sync:lock"

    # Web dashboard (issue 21): one-time sign-in links and sessions (stored under a hash of
    # the secret, so a copy of Redis holds nothing a browser could present), the audit log,
    # progress of long work, and the ranking of the last FAQ gap search
    def dashboard_link(self, token_hash: str) -> str:
        return f"{self.root}:dashboard:link:{token_hash}"

    def dashboard_link_used(self, token_hash: str) -> str:
        return f"{self.root}:dashboard:link_used:{token_hash}"

    def dashboard_session(self, session_hash: str) -> str:
        return f"{self.root}:dashboard:session:{session_hash}"

    def dashboard_audit(self) -> str:
        """List of JSON entries, newest first, capped."""
        return f"{self.root}:dashboard:audit"

    def dashboard_job(self, job_id: str) -> str:
        return f"{self.root}:dashboard:job:{job_id}"

    def gaps_latest(self) -> str:
        """List of the gap ids the last search found, most asked first."""
        return f"{self.root}:gap:latest"


# Campaigns (bot/campaigns): the one APScheduler job store every process shares.
def scheduler_jobs() -> str:
    return f"{PREFIX}:_global:scheduler:jobs"


def scheduler_run_times() -> str:
    return f"{PREFIX}:_global:scheduler:run_times"

