"""The dashboard's domain parts on a real Redis: jobs report failures plainly, the audit log
forgets an erased member, and `shopkeep dashboard link` prints a link that signs in."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from adapters.console import ConsoleAdapter
from bot.cli import main
from bot.dashboard.audit import AuditLog
from bot.dashboard.jobs import Jobs, Progress
from bot.errors import UserInputError
from lm_service.api import LMClient
from tests.web.conftest import running_dashboard, sign_in


async def _finished(jobs: Jobs, job_id: str) -> str:
    for _ in range(500):
        state = await jobs.state("default", job_id)
        assert state is not None
        if state.state != "running":
            return state.state
        await asyncio.sleep(0.02)
    raise AssertionError("the job never finished")


async def test_jobs_report_progress_and_failures_without_raw_errors(
        redis_client: aioredis.Redis) -> None:
    jobs = Jobs(redis_client)

    async def counts(progress: Progress) -> str:
        progress.stage("Counting", 10)
        for _ in range(10):
            progress.advance()
            await asyncio.sleep(0.01)
        return "Counted to 10."

    async def refuses(progress: Progress) -> str:
        raise UserInputError("That file has no rows.")

    async def breaks(progress: Progress) -> str:
        raise RuntimeError("secret internal detail")

    done = await jobs.start("default", "test", "Counting", 10, counts)
    refused = await jobs.start("default", "test", "Refusing", 1, refuses)
    broken = await jobs.start("default", "test", "Breaking", 1, breaks)
    await jobs.wait_all()
    assert [await _finished(jobs, j) for j in (done, refused, broken)] == [
        "done", "failed", "failed"]
    ok = await jobs.state("default", done)
    assert ok is not None and (ok.done, ok.total, ok.percent) == (10, 10, 100)
    assert ok.message == "Counted to 10."
    no_rows = await jobs.state("default", refused)
    assert no_rows is not None and no_rows.message == "That file has no rows."
    crashed = await jobs.state("default", broken)
    assert crashed is not None and "error" in crashed.message
    assert "secret internal detail" not in crashed.message
    assert await jobs.state("other", done) is None  # another merchant's job is not found


async def test_the_audit_log_keeps_actions_but_forgets_an_erased_member(
        redis_client: aioredis.Redis) -> None:
    audit = AuditLog(redis_client)
    await audit.record("default", "telegram:7", "Mia", "faq.edit", "returns")
    await audit.record("default", "telegram:8", "Ola", "member.export", "telegram:7")
    await audit.record("default", "telegram:8", "Ola", "member.export", "telegram:70")
    await audit.forget_member("default", "telegram:7", "forgotten:abc")
    entries = await audit.latest("default")
    assert [(e.member, e.name, e.detail) for e in entries] == [
        ("telegram:8", "Ola", "telegram:70"),  # another member whose id starts the same
        ("telegram:8", "Ola", "forgotten:abc"),
        ("forgotten:abc", "(erased member)", "returns"),
    ]
    assert [e.action for e in entries] == ["member.export", "member.export", "faq.edit"]


async def test_the_cli_prints_a_link_that_signs_in(
        redis_url: str, redis_client: aioredis.Redis, tmp_path: Path, lm_client: LMClient,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    async with running_dashboard(redis_url, tmp_path, lm_client) as dash:
        monkeypatch.setenv("SHOPKEEP_REDIS_URL", redis_url)
        monkeypatch.setenv("SHOPKEEP_DASHBOARD_PORT", str(dash.web.port))
        code = await asyncio.to_thread(main, ["dashboard", "link", "--member", "telegram:42",
                                              "--name", "Operator"])
        assert code == 0
        link = capsys.readouterr().out.strip()
        assert link.startswith(f"{dash.url}/m/default/signin/")
        async with httpx.AsyncClient(base_url=dash.url) as browser:
            assert (await sign_in(browser, link)).status_code == 303
            page = await browser.get("/m/default/")
            assert "Operator" in page.text and "admin" in page.text

        bad = await asyncio.to_thread(main, ["dashboard", "link", "--member", "nobody"])
        assert bad == 1
        assert "platform:user_id" in capsys.readouterr().err


async def test_a_dashboard_only_process_leaves_scheduled_runs_to_the_bot(
        redis_url: str, redis_client: aioredis.Redis, tmp_path: Path,
        lm_client: LMClient) -> None:
    """`shopkeep dashboard serve` has no chat adapter: a run due while only it is up waits
    in the shared job store, and the bot's process posts it."""
    from bot.app import App
    from bot.campaigns import CampaignFeature, actions
    from bot.settings import load_settings

    common = {"redis_url": redis_url, "demo_shop": False, "campaign_poll_s": 0.2,
              "campaign_misfire_grace_s": 300}
    web_only = App(load_settings(data_dir=tmp_path / "web", scheduled_jobs=False, **common),
                   lm=lm_client)
    await web_only.start()
    try:
        campaigns = web_only.feature(CampaignFeature)
        await campaigns.repo.note_channel("default", "console:console")
        await actions.create_campaign(campaigns, "default", actions.NewCampaign(
            name="soon", schedule="in 1s", targets="console:console", brief="Tents are back",
            by="console:mod", notify_platform="console", notify_user="mod"))
        await actions.edit_field(campaigns, "default", "soon", "text", "Tents are back!")
        await actions.approve_draft(campaigns, "default", "soon", "console:mod")
        await asyncio.sleep(2.5)  # the run is due; this process must not take it
        assert await campaigns.repo.recent_runs("default", "soon") == []
        assert len(campaigns.scheduler.pending("default/soon")) == 1
    finally:
        await web_only.stop()

    console = ConsoleAdapter(user="mod", interactive=False)
    bot = App(load_settings(data_dir=tmp_path / "bot", **common), adapters=[console],
              lm=lm_client)
    await bot.start()
    try:
        for _ in range(300):
            if any(o.text == "Tents are back!" for o in console.sent):
                break
            await asyncio.sleep(0.1)
        assert [o.text for o in console.sent if o.text == "Tents are back!"] == [
            "Tents are back!"]
    finally:
        await bot.stop()
