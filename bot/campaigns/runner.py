"""One run of one campaign: lock, settle the text, deliver once per target, record it."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from bot.campaigns.content import campaign_request
from bot.campaigns.lock import RunLock
from bot.campaigns.models import Campaign, Delivery, split_campaign_id
from bot.campaigns.pacing import Pacer, Progress
from bot.campaigns.repository import CampaignRepo
from bot.campaigns.sources import dm_audience
from bot.campaigns.writer import ContentWriter, GenerationFailed
from bot.events import Destination, Outbound, Platform
from bot.ops.metrics import record_campaign_run
from bot.outbox import Outbox
from bot.storage.keys import Keys
from bot.storage.store import Store
from bot.tenancy.places import approved_channels

log = logging.getLogger(__name__)

DeliveryListener = Callable[[str, str], Awaitable[None]]
"""`async listener(merchant, platform)`, told of each delivery that reached its target."""

FINAL = ("done", "skipped", "failed", "missed")
LARGE_FANOUT = 50  # deliveries from which moderators get a summary when a run finishes


@dataclass(frozen=True)
class RunPolicy:
    lock_ttl_s: float = 300.0
    dm_cap: int = 2
    dm_cap_window_s: int = 7 * 86400


@dataclass(frozen=True)
class RunResult:
    status: str  # done | skipped | failed | locked | already | gone
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    resumed: int = 0  # deliveries an earlier attempt of this run had already made
    note: str = ""


def run_id_for(when: datetime) -> str:
    """The run id is the scheduled time in UTC: every process computes the same one."""
    from datetime import UTC

    return when.astimezone(UTC).isoformat(timespec="seconds")


class CampaignRunner:
    def __init__(self, store: Store, outbox: Outbox, repo: CampaignRepo, writer: ContentWriter,
                 policy: RunPolicy | None = None, pacer: Pacer | None = None) -> None:
        self.store = store
        self.outbox = outbox
        self.repo = repo
        self.writer = writer
        self.policy = policy or RunPolicy()
        self.pacer = pacer or Pacer()
        self.delivery_listeners: list[DeliveryListener] = []

    async def run(self, campaign_id: str, scheduled_for: str) -> RunResult:
        """Run `campaign_id` for its run scheduled at `scheduled_for` (ISO time)."""
        result = await self._run(campaign_id, scheduled_for)
        record_campaign_run(result.status)
        return result

    async def _run(self, campaign_id: str, scheduled_for: str) -> RunResult:
        merchant, name = split_campaign_id(campaign_id)
        run_id = run_id_for(datetime.fromisoformat(scheduled_for))
        campaign = await self.repo.get(merchant, name)
        if campaign is None:
            return RunResult("gone", note="the campaign was deleted")
        if (await self.repo.run_info(merchant, name, run_id)).get("status") in FINAL:
            return RunResult("already")
        if campaign.paused:
            return await self._skip(campaign, run_id, "the campaign is paused")
        if not campaign.approved:
            result = await self._skip(campaign, run_id, "no moderator approved it")
            await self.notify(campaign, f"Campaign {name} was due at {run_id} but no moderator "
                              "approved it, so nothing was posted. Use /campaign preview "
                              f"{name} and /campaign approve {name}.")
            return result
        lock = RunLock(self.store.redis, Keys(merchant).campaign_lock(name, run_id),
                       self.policy.lock_ttl_s)
        if not await lock.acquire():
            holder = await lock.holder()
            return RunResult("locked", note=f"another process holds the run ({holder})")
        try:
            async with lock.kept_alive():
                # Checked again under the lock: a process may have finished it a moment ago.
                if (await self.repo.run_info(merchant, name, run_id)).get("status") in FINAL:
                    return RunResult("already")
                return await self._deliver(campaign, run_id, lock.owner)
        finally:
            await lock.release()

    async def _skip(self, campaign: Campaign, run_id: str, why: str) -> RunResult:
        await self.repo.record_run(campaign.merchant, campaign.name, run_id, _ts(run_id),
                                   status="skipped", note=why, finished_at=time.time())
        log.info("campaign %s run %s skipped: %s", campaign.id, run_id, why)
        return RunResult("skipped", note=why)

    async def _deliver(self, campaign: Campaign, run_id: str, owner: str) -> RunResult:
        merchant, name = campaign.merchant, campaign.name
        await self.repo.record_run(merchant, name, run_id, _ts(run_id), status="running",
                                   owner=owner, started_at=time.time())
        text = await self._text(campaign, run_id)
        if text is None:
            return RunResult("failed", note="the model could not write an acceptable post")
        done = await self.repo.deliveries(merchant, name, run_id)
        channels = [t for t in campaign.targets if not t.is_dm]
        members = (await dm_audience(self.store, self.repo, merchant, campaign.segment)
                   if any(t.is_dm for t in campaign.targets) else [])

        async def report(sent: int, failed: int, total: int) -> None:
            await self.repo.record_run(merchant, name, run_id, _ts(run_id), sent=sent,
                                       failed=failed, total=total)
            log.info("campaign %s run %s: %d/%d sent, %d failed", campaign.id, run_id, sent,
                     total, failed)

        progress = Progress(len(channels) + len(members), report)
        resumed = sum(1 for d in done.values() if d.status == "sent")
        # A community revoked since the campaign was made is not served any more.
        served = await approved_channels(self.store.redis, merchant,
                                         [t.key for t in channels], unknown_ok=True)
        for target in channels:
            assert target.platform is not None
            prior = done.get(target.key)
            if target.key not in served and (prior is None or prior.status != "sent"):
                await progress.add(await self._record(campaign, run_id, Delivery(
                    target.key, "skipped", detail="its community is not connected to the shop")))
                continue
            await progress.add(await self._send(campaign, run_id, target.key,
                                                target.destination(), text, done))
        for member in members:
            await progress.add(await self._send_dm(campaign, run_id, member, text, done))
        status = "done"
        await self.repo.record_run(merchant, name, run_id, _ts(run_id), status=status,
                                   sent=progress.sent, failed=progress.failed,
                                   skipped=progress.skipped, total=progress.total,
                                   finished_at=time.time())
        if progress.total >= LARGE_FANOUT:
            await self.notify(campaign, f"Campaign {name} run {run_id} finished: "
                              f"{progress.sent} sent, {progress.failed} failed, "
                              f"{progress.skipped} skipped of {progress.total}.")
        elif progress.failed:
            await self.notify(campaign, f"Campaign {name} run {run_id}: {progress.failed} of "
                              f"{progress.total} deliveries failed; see /campaign history {name}.")
        return RunResult(status, progress.sent, progress.failed, progress.skipped, resumed)

    async def _text(self, campaign: Campaign, run_id: str) -> str | None:
        if not campaign.auto_approve:
            return await self.repo.claim_run_text(campaign.merchant, campaign.name, run_id,
                                                  campaign.approved_text)
        existing = (await self.repo.run_info(campaign.merchant, campaign.name, run_id)).get("text")
        if existing:
            return existing
        try:
            written = await self.writer.write(
                await campaign_request(self.store, self.repo, self.outbox, campaign))
        except GenerationFailed as exc:
            await self.repo.record_run(campaign.merchant, campaign.name, run_id, _ts(run_id),
                                       status="failed", note=str(exc)[:500],
                                       finished_at=time.time())
            await self.notify(campaign, f"Campaign {campaign.name}: I could not write an "
                              f"acceptable post for the run at {run_id}, so nothing was posted. "
                              f"Why: {exc}")
            return None
        return await self.repo.claim_run_text(campaign.merchant, campaign.name, run_id,
                                              written.text)

    async def _send_dm(self, campaign: Campaign, run_id: str, member: str, text: str,
                       done: dict[str, Delivery]) -> str:
        platform_name, _, user_id = member.partition(":")
        try:
            platform = Platform(platform_name)
        except ValueError:
            return await self._record(campaign, run_id, Delivery(member, "skipped",
                                                                 detail="unknown platform"))
        if platform not in self.outbox.platforms:  # e.g. a console member: nothing to reach
            return await self._record(campaign, run_id, Delivery(
                member, "skipped", detail=f"{platform.value} is not connected"))
        prior = done.get(member)
        if prior is None or prior.status not in ("sent", "skipped"):
            granted = await self.repo.reserve_dm(
                campaign.merchant, member, f"{campaign.name}@{run_id}", self.policy.dm_cap,
                self.policy.dm_cap_window_s)
            if not granted:
                return await self._record(campaign, run_id, Delivery(
                    member, "skipped", detail="frequency cap reached"))
        status = await self._send(campaign, run_id, member,
                                  Destination(platform, user_id=user_id), text, done)
        if status == "failed":  # nothing reached the member: the slot is not used up
            await self.repo.release_dm(campaign.merchant, member, f"{campaign.name}@{run_id}")
        return status

    async def _send(self, campaign: Campaign, run_id: str, target_key: str,
                    destination: Destination, text: str, done: dict[str, Delivery]) -> str:
        prior = done.get(target_key)
        if prior is not None and prior.status in ("sent", "skipped"):
            return prior.status  # an earlier attempt of this run did it: never again
        await self.pacer.wait(destination.platform,
                              destination.channel_id or f"user:{destination.user_id}")
        await self._record(campaign, run_id, Delivery(target_key, "sending"))
        outbound = Outbound(text=text, destination=destination,
                            idempotency_key=f"campaign:{campaign.id}:{run_id}:{target_key}")
        try:
            ids = await self.outbox.send(outbound)
        except Exception as exc:  # one target failing must not stop the others
            log.warning("campaign %s run %s: sending to %s failed: %s", campaign.id, run_id,
                        target_key, exc)
            # Shown to moderators in /campaign history (never to members).
            detail = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
            return await self._record(campaign, run_id,
                                      Delivery(target_key, "failed", detail=str(detail)[:200]))
        status = await self._record(campaign, run_id,
                                    Delivery(target_key, "sent", message_ids=list(ids)))
        for listener in self.delivery_listeners:
            try:  # analytics must never fail a delivery that already happened
                await listener(campaign.merchant, destination.platform.value)
            except Exception:
                log.exception("delivery listener failed for %s", campaign.id)
        return status

    async def _record(self, campaign: Campaign, run_id: str, delivery: Delivery) -> str:
        delivery.at = time.time()
        await self.repo.record_delivery(campaign.merchant, campaign.name, run_id, delivery)
        return delivery.status

    async def notify(self, campaign: Campaign, text: str) -> None:
        """Tell the moderator who set the campaign up (best effort: never fails a run)."""
        if not campaign.notify_platform:
            log.warning("campaign %s: %s", campaign.id, text)
            return
        destination = Destination(Platform(campaign.notify_platform),
                                  channel_id=campaign.notify_channel or None,
                                  user_id=campaign.notify_user or None)
        try:
            await self.outbox.send(Outbound(text=text, destination=destination, private=True))
        except Exception:
            log.exception("could not tell the moderators of %s: %s", campaign.id, text)


def _ts(run_id: str) -> float:
    return datetime.fromisoformat(run_id).timestamp()
