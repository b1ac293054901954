"""One run of one campaign: lock, settle the text, deliver once per target, record it."""

from __future__ import annotations

import functools
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
from bot.errors import UserInputError
from bot.events import Destination, Outbound, Platform
from bot.ops.metrics import record_campaign_run
from bot.outbox import Outbox
from bot.ports import DeliveryUncertain
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
    lock_ttl_s: float = 20.0  # the run lock's lease, renewed every third of it while working
    dm_cap: int = 2
    dm_cap_window_s: int = 7 * 86400


@dataclass(frozen=True)
class RunResult:
    status: str  # done | skipped | failed | locked | lost | already | gone
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    resumed: int = 0  # deliveries an earlier attempt of this run had already made
    note: str = ""
    uncertain: int = 0  # targets that may or may not have the post (never counted as sent)
    retry_in_s: float = 0.0  # locked: when the holder's lease runs out unless it renews it


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
            return RunResult("locked", note=f"another process holds the run ({holder})",
                             retry_in_s=await lock.remaining_s())
        try:
            async with lock.kept_alive():
                # Checked again under the lock: a process may have finished it a moment ago.
                if (await self.repo.run_info(merchant, name, run_id)).get("status") in FINAL:
                    return RunResult("already")
                return await self._deliver(campaign, run_id, lock)
        finally:
            await lock.release()

    async def _skip(self, campaign: Campaign, run_id: str, why: str) -> RunResult:
        await self.repo.record_run(campaign.merchant, campaign.name, run_id, _ts(run_id),
                                   status="skipped", note=why, finished_at=time.time())
        log.info("campaign %s run %s skipped: %s", campaign.id, run_id, why)
        return RunResult("skipped", note=why)

    async def _deliver(self, campaign: Campaign, run_id: str, lock: RunLock) -> RunResult:
        merchant, name = campaign.merchant, campaign.name
        await self.repo.record_run(merchant, name, run_id, _ts(run_id), status="running",
                                   owner=lock.owner, started_at=time.time())
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
        resumed = sum(1 for d in done.values() if d.proven)
        # A community revoked since the campaign was made is not served any more; a target
        # already begun keeps its record (sent, or uncertain for the moderators to check).
        served = await approved_channels(self.store.redis, merchant,
                                         [t.key for t in channels], unknown_ok=True)
        sends = []
        for target in channels:
            assert target.platform is not None
            prior = done.get(target.key)
            if target.key not in served and (prior is None
                                             or prior.status not in ("sent", "uncertain")):
                await progress.add(await self._record(campaign, run_id, Delivery(
                    target.key, "skipped", detail="its community is not connected to the shop")))
                continue
            sends.append(functools.partial(self._send, campaign, run_id, target.key,
                                           target.destination(), text, done))
        sends += [functools.partial(self._send_dm, campaign, run_id, m, text, done)
                  for m in members]
        for send in sends:
            if lock.lost:  # another process has the run now; it carries on from the records
                return RunResult("lost", progress.sent, progress.failed, progress.skipped,
                                 resumed, note="lost the run lock mid-run",
                                 uncertain=progress.uncertain)
            await progress.add(await send())
        status = "done"
        await self.repo.record_run(merchant, name, run_id, _ts(run_id), status=status,
                                   sent=progress.sent, failed=progress.failed,
                                   skipped=progress.skipped, uncertain=progress.uncertain,
                                   total=progress.total, finished_at=time.time())
        if progress.uncertain:
            await self._tell_uncertain(campaign, run_id)
        if progress.total >= LARGE_FANOUT:
            await self.notify(campaign, f"Campaign {name} run {run_id} finished: "
                              f"{progress.sent} sent, {progress.failed} failed, "
                              f"{progress.skipped} skipped of {progress.total}"
                              f"{_uncertain(progress.uncertain)}.")
        elif progress.failed:
            await self.notify(campaign, f"Campaign {name} run {run_id}: {progress.failed} of "
                              f"{progress.total} deliveries failed; see /campaign history {name}.")
        return RunResult(status, progress.sent, progress.failed, progress.skipped, resumed,
                         uncertain=progress.uncertain)

    async def _tell_uncertain(self, campaign: Campaign, run_id: str) -> None:
        deliveries = await self.repo.deliveries(campaign.merchant, campaign.name, run_id)
        targets = sorted(d.target for d in deliveries.values() if d.status == "uncertain")
        shown = ", ".join(targets[:10]) + (f" and {len(targets) - 10} more"
                                           if len(targets) > 10 else "")
        await self.notify(campaign, (
            f"Campaign {campaign.name} run {run_id}: I can't tell whether the post reached "
            f"{shown}. The platform had the message but never confirmed it (the bot was "
            "stopped or the connection dropped), and it does not let me check, so I did not "
            "post again: that could have doubled it. Please look there; /campaign resend "
            f"{campaign.name} <target> posts it if it is missing."))

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
        if prior is not None and prior.status in ("sent", "skipped", "uncertain"):
            # An earlier attempt of this run did it, or left it for a moderator to check:
            # never posted again from here. A "sent" without a message id proves nothing.
            return prior.status if prior.proven or prior.status != "sent" else "uncertain"
        await self.pacer.wait(destination.platform,
                              destination.channel_id or f"user:{destination.user_id}")
        # Tells a restart that this target was begun; the adapter's journal (keyed by the
        # idempotency key) knows whether a request actually left.
        await self._record(campaign, run_id, Delivery(target_key, "sending"))
        outbound = Outbound(text=text, destination=destination,
                            idempotency_key=delivery_key(campaign.id, run_id, target_key))
        try:
            ids = await self.outbox.send(outbound)
        except DeliveryUncertain as exc:
            log.warning("campaign %s run %s: %s may or may not have been posted: %s",
                        campaign.id, run_id, target_key, exc)
            return await self._record(campaign, run_id, Delivery(
                target_key, "uncertain", detail=str(exc)[:200]))
        except Exception as exc:  # one target failing must not stop the others
            log.warning("campaign %s run %s: sending to %s failed: %s", campaign.id, run_id,
                        target_key, exc)
            # Shown to moderators in /campaign history (never to members).
            detail = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
            return await self._record(campaign, run_id,
                                      Delivery(target_key, "failed", detail=str(detail)[:200]))
        if not ids:  # an adapter must prove a post with its id; without one, nobody knows
            return await self._record(campaign, run_id, Delivery(
                target_key, "uncertain", detail="the platform returned no message id"))
        status = await self._record(campaign, run_id,
                                    Delivery(target_key, "sent", message_ids=list(ids)))
        for listener in self.delivery_listeners:
            try:  # analytics must never fail a delivery that already happened
                await listener(campaign.merchant, destination.platform.value)
            except Exception:
                log.exception("delivery listener failed for %s", campaign.id)
        return status

    async def resend(self, campaign: Campaign, run_id: str, target_key: str,
                     by: str) -> Delivery:
        """Post a run's uncertain delivery again, on a moderator's word that it is missing
        (the run's own key would refuse: its journal says a request may have got through).

        Raises:
            UserInputError: the target is not uncertain in that run.
        """
        prior = (await self.repo.deliveries(campaign.merchant, campaign.name,
                                            run_id)).get(target_key)
        if prior is None or prior.status != "uncertain":
            raise UserInputError(f"{target_key} is {prior.status if prior else 'not a target'}"
                                 f" in run {run_id} of {campaign.name}, not uncertain.")
        text = (await self.repo.run_info(campaign.merchant, campaign.name, run_id)).get("text")
        if not text:
            raise UserInputError(f"Run {run_id} of {campaign.name} has no text to post.")
        platform, _, where = target_key.partition(":")
        channel = next((t for t in campaign.targets if t.key == target_key), None)
        destination = (channel.destination() if channel is not None  # else a member's DM
                       else Destination(Platform(platform), user_id=where))
        ids = await self.outbox.send(Outbound(
            text=text, destination=destination,
            idempotency_key=delivery_key(campaign.id, run_id, target_key) + ":resend"))
        if not ids:
            raise UserInputError(f"{platform} gave no message id; look at {target_key}.")
        delivery = Delivery(target_key, "sent", message_ids=list(ids),
                            detail=f"re-sent by {by} (was uncertain)")
        await self._record(campaign, run_id, delivery)
        info = await self.repo.run_info(campaign.merchant, campaign.name, run_id)
        await self.repo.record_run(campaign.merchant, campaign.name, run_id, _ts(run_id),
                                   sent=int(info.get("sent") or 0) + 1,
                                   uncertain=max(0, int(info.get("uncertain") or 1) - 1))
        return delivery

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


def delivery_key(campaign_id: str, run_id: str, target_key: str) -> str:
    """The idempotency key of one delivery: every attempt of the run uses the same one."""
    return f"campaign:{campaign_id}:{run_id}:{target_key}"


def _uncertain(count: int) -> str:
    return f", {count} uncertain (see /campaign history)" if count else ""


def _ts(run_id: str) -> float:
    return datetime.fromisoformat(run_id).timestamp()
