"""APScheduler 3 on a shared Redis job store: one job per run, `run_campaign` top-level."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from apscheduler.events import EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.executors.asyncio import AsyncIOExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.redis import RedisJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.campaigns.models import Campaign, split_campaign_id
from bot.campaigns.repository import CampaignRepo
from bot.campaigns.runner import FINAL, CampaignRunner, RunResult, run_id_for
from bot.campaigns.schedule import next_run_after
from bot.storage.keys import Keys, merchants, scheduler_jobs, scheduler_run_times

log = logging.getLogger(__name__)

JOB_FUNC = "bot.campaigns.scheduler:run_campaign"
LEASE_MARGIN_S = 0.5  # after a lease's end, before trying its run again
# The scheduler whose executor started the running job; jobs are pickled by reference, so
# they reach their process's runner through this, not through their arguments.
_ACTIVE: ContextVar[CampaignScheduler | None] = ContextVar("campaign_scheduler", default=None)


async def run_campaign(campaign_id: str, scheduled_for: str) -> str:
    """The job every campaign run is: chain the next run, then deliver this one."""
    owner = _ACTIVE.get()
    if owner is None:
        raise RuntimeError("run_campaign runs inside a CampaignScheduler's executor")
    result = await owner.fire(campaign_id, scheduled_for)
    return result.status


class SharedRedisJobStore(RedisJobStore):
    """RedisJobStore for several schedulers: a job another process already ran and removed is
    not an error here (stock APScheduler assumes one scheduler and would stop its loop)."""

    def __init__(self, url: str, namespace: str = "") -> None:
        super().__init__(jobs_key=scheduler_jobs() + namespace,
                         run_times_key=scheduler_run_times() + namespace)
        self.redis = redis.Redis.from_url(url)

    def remove_job(self, job_id: str) -> None:
        with contextlib.suppress(JobLookupError):
            super().remove_job(job_id)

    def update_job(self, job: Any) -> None:
        with contextlib.suppress(JobLookupError):
            super().update_job(job)


class _CampaignExecutor(AsyncIOExecutor):
    def __init__(self, owner: CampaignScheduler) -> None:
        super().__init__()
        self._owner = owner

    def _do_submit_job(self, job: Any, run_times: list[datetime]) -> None:
        token = _ACTIVE.set(self._owner)  # the job's task copies this context when created
        try:
            super()._do_submit_job(job, run_times)
        finally:
            _ACTIVE.reset(token)


def job_id(campaign_id: str, when: datetime) -> str:
    return f"{campaign_id}@{run_id_for(when)}"


class CampaignScheduler:
    """Owns the AsyncIOScheduler of this process. `poll_s` makes it look at the shared job
    store regularly, so that runs another process scheduled are seen here too."""

    def __init__(self, redis_url: str, repo: CampaignRepo, runner: CampaignRunner, *,
                 misfire_grace_s: int = 300, coalesce: bool = True, poll_s: float = 5.0,
                 store_namespace: str = "", stall_check_s: float = 60.0,
                 fire: bool = True) -> None:
        self.redis_url = redis_url
        self.store_namespace = store_namespace  # a separate job store on the same Redis
        self.stall_check_s = stall_check_s  # how often to look for runs a dead process left
        self.repo = repo
        self.runner = runner
        self.misfire_grace_s = misfire_grace_s
        self.coalesce = coalesce
        self.poll_s = poll_s
        self.scheduler: AsyncIOScheduler | None = None
        self._poll: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[Any]] = set()
        self.results: list[tuple[str, str, RunResult]] = []  # (campaign, run, result) here
        # False: this process only reads and writes the shared job store (a dashboard-only
        # process, which has no chat adapter to post with); the bot's processes fire runs.
        self.fire_runs = fire

    async def start(self) -> None:
        scheduler = AsyncIOScheduler(
            jobstores={"default": SharedRedisJobStore(self.redis_url, self.store_namespace)},
            executors={"default": _CampaignExecutor(self)},
            job_defaults={"misfire_grace_time": self.misfire_grace_s, "coalesce": self.coalesce,
                          "max_instances": 1},
            timezone=UTC,
        )
        scheduler.add_listener(self._on_missed, EVENT_JOB_MISSED)
        scheduler.start(paused=not self.fire_runs)
        self.scheduler = scheduler
        if not self.fire_runs:
            return
        await self.reconcile()
        await self.resume_stalled()
        self._poll = asyncio.create_task(self._poll_loop())

    async def stop(self, drain_s: float = 30.0) -> None:
        """Stop taking runs, let runs in progress finish (up to `drain_s`), then shut down."""
        if self._poll is not None:
            self._poll.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poll
            self._poll = None
        if self.scheduler is None:
            return
        self.scheduler.pause()
        if self._running:
            await asyncio.wait(set(self._running), timeout=drain_s)
        self.scheduler.shutdown(wait=False)
        self.scheduler = None
        await asyncio.sleep(0)  # AsyncIOScheduler shuts down in a loop callback

    # Scheduling ------------------------------------------------------------------------
    def schedule_run(self, campaign: Campaign, when: datetime) -> None:
        sched = self._require()
        sched.add_job(JOB_FUNC, trigger="date", run_date=when, args=[campaign.id,
                      run_id_for(when)], id=job_id(campaign.id, when),
                      name=f"campaign {campaign.id}", replace_existing=True)

    async def schedule_next(self, campaign: Campaign,
                            after: datetime | None = None) -> datetime | None:
        """Schedule the first run after `after` (default: now); returns its time."""
        moment = after or datetime.now(UTC)
        when = next_run_after(campaign.schedule, moment)
        if when is not None:
            self.schedule_run(campaign, when)
        await self.repo.update(campaign.merchant, campaign.name,
                               next_run=run_id_for(when) if when else "")
        return when

    def unschedule(self, campaign_id: str) -> int:
        sched = self._require()
        removed = 0
        for job in sched.get_jobs():
            if job.id.startswith(f"{campaign_id}@"):
                with contextlib.suppress(JobLookupError):
                    job.remove()
                    removed += 1
        return removed

    def pending(self, campaign_id: str) -> list[datetime]:
        return sorted(job.next_run_time for job in self._require().get_jobs()
                      if job.id.startswith(f"{campaign_id}@") and job.next_run_time)

    async def reconcile(self) -> None:
        """Give every live campaign a pending run (after a crash lost one between firing and
        chaining, or after its run was missed)."""
        now = datetime.now(UTC)
        pending = {job.id.partition("@")[0] for job in self._require().get_jobs()}
        for merchant in sorted(str(m) for m in await self.repo.redis.smembers(merchants())):
            for campaign in await self.repo.all(merchant):
                if campaign.paused or campaign.id in pending:
                    continue
                start = now
                if campaign.next_run:
                    recorded = datetime.fromisoformat(campaign.next_run)
                    info = await self.repo.run_info(merchant, campaign.name, campaign.next_run)
                    if info.get("status") not in FINAL and recorded > now - timedelta(
                            seconds=self.misfire_grace_s):
                        self.schedule_run(campaign, recorded)
                        continue
                await self.schedule_next(campaign, start)

    async def resume_stalled(self) -> int:
        """Fire again the runs a dead process left half done (still `running`, lock expired):
        their delivery records make the new attempt post only what is missing."""
        resumed = 0
        jobs = {job.id for job in self._require().get_jobs()}
        for merchant in sorted(str(m) for m in await self.repo.redis.smembers(merchants())):
            keys = Keys(merchant)
            for campaign in await self.repo.all(merchant):
                for run_id, info in await self.repo.recent_runs(merchant, campaign.name, 5):
                    if info.get("status") != "running" or f"{campaign.id}@{run_id}" in jobs:
                        continue
                    lease_ms = int(await self.repo.redis.pttl(
                        keys.campaign_lock(campaign.name, run_id)))
                    if lease_ms > 0:
                        # Its holder may be alive, or dead with its lease running out: look
                        # again the moment the lease ends (a live holder will have renewed).
                        self._retry(campaign.id, run_id, lease_ms / 1000)
                        continue
                    log.warning("resuming run %s of %s, left unfinished", run_id, campaign.id)
                    self._retry(campaign.id, run_id, 0.0)
                    resumed += 1
        return resumed

    def _retry(self, campaign_id: str, run_id: str, after_s: float) -> None:
        """Fire `run_id` again in `after_s` seconds (one job per run, whoever schedules it)."""
        when = datetime.now(UTC) + timedelta(seconds=after_s + LEASE_MARGIN_S if after_s else 0)
        self._require().add_job(
            JOB_FUNC, trigger="date", run_date=when, args=[campaign_id, run_id],
            id=f"{campaign_id}@{run_id}", name=f"campaign {campaign_id} (resumed)",
            replace_existing=True)

    # Firing ----------------------------------------------------------------------------
    async def fire(self, campaign_id: str, scheduled_for: str) -> RunResult:
        task = asyncio.current_task()
        if task is not None:
            self._running.add(task)
        try:
            merchant, name = split_campaign_id(campaign_id)
            campaign = await self.repo.get(merchant, name)
            if campaign is not None and not campaign.paused:
                # Chain first: a crash during delivery must not lose the following runs.
                scheduled = datetime.fromisoformat(scheduled_for)
                await self.schedule_next(
                    campaign, datetime.now(UTC) if self.coalesce else scheduled)
            result = await self.runner.run(campaign_id, scheduled_for)
            if result.status == "locked":
                # Another process holds the run. Should it die, its lease runs out in
                # `retry_in_s` at the latest: try again then, not at the next stall check.
                self._retry(campaign_id, run_id_for(datetime.fromisoformat(scheduled_for)),
                            result.retry_in_s)
            self.results.append((campaign_id, scheduled_for, result))
            log.info("campaign %s run %s: %s", campaign_id, scheduled_for, result)
            return result
        finally:
            if task is not None:
                self._running.discard(task)

    def _on_missed(self, event: JobExecutionEvent) -> None:
        campaign_id, at, run_id = str(event.job_id).partition("@")
        if not at or "/" not in campaign_id:
            return  # another feature's job on this scheduler (the weekly digest)
        task = asyncio.get_running_loop().create_task(self._missed(campaign_id, run_id))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _missed(self, campaign_id: str, run_id: str) -> None:
        merchant, name = split_campaign_id(campaign_id)
        campaign = await self.repo.get(merchant, name)
        if campaign is None:
            return
        info = await self.repo.run_info(merchant, name, run_id)
        if info.get("status") not in FINAL:
            await self.repo.record_run(
                merchant, name, run_id, datetime.fromisoformat(run_id).timestamp(),
                status="missed", note=f"no process was up within {self.misfire_grace_s}s of it")
        if not campaign.paused:
            await self.schedule_next(campaign)

    async def _poll_loop(self) -> None:
        last_check = time.monotonic()
        while True:
            await asyncio.sleep(self.poll_s)
            if self.scheduler is None:
                continue
            self.scheduler.wakeup()
            if time.monotonic() - last_check >= self.stall_check_s:
                last_check = time.monotonic()
                try:
                    await self.resume_stalled()
                except Exception:  # Redis away for a moment: try again next round
                    log.exception("could not look for unfinished campaign runs")

    def _require(self) -> AsyncIOScheduler:
        if self.scheduler is None:
            raise RuntimeError("the campaign scheduler is not running")
        return self.scheduler
