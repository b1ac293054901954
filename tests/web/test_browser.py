"""The dashboard in a real headless Chromium, against the whole app (real Redis, real models,
the console adapter as the chat platform): what a moderator does, click by click."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import redis.asyncio as aioredis
from playwright.async_api import Page, expect

from bot.campaigns import CampaignFeature
from bot.dashboard import DashboardFeature
from bot.events import Citation, Privilege
from bot.growth import GrowthFeature
from bot.knowledge.feature import KnowledgeFeature
from bot.knowledge.files import parse_catalog, parse_faq
from bot.persona import load_persona
from bot.profiles import ProfilesFeature
from bot.profiles.erase import pseudonym
from bot.storage.keys import Keys
from tests.web.browser import chromium, new_page, screenshot, sign_in
from tests.web.conftest import Running

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo-shop"


async def test_sign_in_by_link_then_a_used_or_expired_link_is_refused(dash: Running) -> None:
    link = await dash.link()
    async with chromium() as browser:
        page = await new_page(browser)
        await sign_in(page, link)
        await expect(page.get_by_text("mod moderator")).to_be_visible()
        await screenshot(page, "01-overview-empty")

        again = await new_page(browser)  # the same link in another browser session
        await again.goto(link)
        await again.get_by_role("button", name="Sign in").click()
        await expect(again.get_by_role("heading", name="Link refused")).to_be_visible()
        await expect(again.get_by_text("already used")).to_be_visible()
        await again.goto(f"{dash.url}/m/default/faq")
        await expect(again.get_by_role("heading", name="Sign in to the default dashboard")
                     ).to_be_visible()

        expired_link = await dash.link(user="mod2")
        token = expired_link.rsplit("/", 1)[1]
        from bot.dashboard.access import secret_hash

        await dash.app.store.redis.pexpire(Keys("default").dashboard_link(secret_hash(token)),
                                           1)
        late = await new_page(browser)
        await late.goto(expired_link)
        await late.get_by_role("button", name="Sign in").click()
        await expect(late.get_by_text("has expired")).to_be_visible()


async def test_import_shows_row_errors_then_live_progress(dash: Running, tmp_path: Path) -> None:
    broken = tmp_path / "faq.csv"
    broken.write_text("id,question,answer\nreturns,How do I return?,Within 30 days.\n"
                      ",No id here?,An answer\nshipping,,Free over $50\n", encoding="utf-8")
    async with chromium() as browser:
        page = await new_page(browser)
        await sign_in(page, await dash.link())
        await page.get_by_role("link", name="FAQ", exact=True).click()
        await page.get_by_role("link", name="Import a file").click()
        await page.get_by_label(re.compile("^File")).set_input_files(str(broken))
        await page.get_by_role("button", name="Import").click()
        alert = page.get_by_role("alert")
        await expect(alert).to_contain_text("nothing was imported")
        await expect(alert).to_contain_text("row 2")
        await expect(alert).to_contain_text("row 3")
        await screenshot(page, "02-import-errors")
        assert await dash.app.store.redis.scard(Keys("default").faq_ids()) == 0

        await page.get_by_label(re.compile("^File")).set_input_files(str(DEMO / "faq.yaml"))
        await page.get_by_role("button", name="Import").click()
        await expect(page.get_by_role("heading", name="Importing faq.yaml")).to_be_visible()
        await expect(page.locator("[data-job-state]")).to_have_text("Done.", timeout=240_000)
        await expect(page.locator("[data-job-message]")).to_contain_text("added")
        await page.get_by_role("link", name="Back").click()
        await expect(page.get_by_role("heading", name=re.compile("^FAQ"))).to_be_visible()
        assert await dash.app.store.redis.scard(Keys("default").faq_ids()) > 10


async def test_approving_a_gap_makes_the_bot_answer_it(dash: Running) -> None:
    console = dash.console
    for user, question in (("ann", "Do you sell gift cards?"), ("ben", "do you sell gift cards"),
                           ("cat", "Can I buy a gift card?")):
        [reply] = await console.say(question, role=Privilege.MEMBER, user=user)
        assert not reply.answered, reply.text  # nothing in the FAQ about it yet
    async with chromium() as browser:
        page = await new_page(browser)
        await sign_in(page, await dash.link())
        await page.get_by_role("link", name="FAQ gaps").click()
        await page.get_by_role("button", name="Search for gaps now").click()
        await expect(page.locator("[data-job-state]")).to_have_text("Done.", timeout=300_000)
        await page.get_by_role("link", name="Back").click()
        gap = page.locator("section.gap").filter(has_text="gift card")
        await expect(gap).to_be_visible()
        await screenshot(page, "03-gaps")
        answer = gap.get_by_role("textbox")
        await answer.fill("Yes! Digital gift cards from $10 to $200 are in the shop under "
                          "Gift cards, delivered by email within minutes.")
        await gap.get_by_role("button", name="Approve into the FAQ").click()
        await expect(page.get_by_role("status")).to_contain_text("Added to the FAQ")

    [answered] = await console.say("Do you sell gift cards?", role=Privilege.MEMBER,
                                   user="dan")
    assert answered.answered, answered.text
    assert "Digital gift cards from $10 to $200" in answered.text
    assert any(c.kind == "faq" for c in answered.citations)
    [entry] = await dash.app.feature(DashboardFeature).audit.latest("default", 1)
    assert entry.action == "gaps.approve" and entry.member == "console:mod"


async def test_preview_and_approve_a_campaign(dash: Running) -> None:
    await dash.console.say("hello everyone", role=Privilege.MEMBER, user="ann")  # a channel
    await dash.app.router.drain()
    async with chromium() as browser:
        page = await new_page(browser)
        await sign_in(page, await dash.link())
        await page.get_by_role("link", name="Campaigns").click()
        await page.get_by_label(re.compile("^Name")).fill("spring-tents")
        await page.get_by_label(re.compile("^Brief")).fill(
            "Spring camping season is here: tents for two that pitch in minutes.")
        await page.get_by_label(re.compile("^Schedule")).fill("in 2h")
        await page.get_by_label("console:console").check()
        await page.get_by_role("button", name="Create campaign").click()
        await expect(page.get_by_role("heading", name=re.compile("spring-tents"))).to_be_visible()
        await expect(page.get_by_text("awaiting approval")).to_be_visible()

        await page.get_by_role("button", name="Write a preview").click()
        preview = page.get_by_label("Preview of the post")
        await expect(preview).to_be_visible(timeout=240_000)
        draft = (await preview.inner_text()).strip()
        assert len(draft) > 20
        await screenshot(page, "04-campaign-preview")
        await page.get_by_role("button", name="Approve this draft").click()
        await expect(page.get_by_role("status")).to_contain_text("Approved")
        await expect(page.get_by_role("button", name="Approved")).to_be_disabled()
        await screenshot(page, "05-campaign-approved")
        await page.get_by_role("link", name="Campaigns").first.click()
        row = page.get_by_role("row").filter(has_text="spring-tents")
        await expect(row).to_contain_text("approved")
        await screenshot(page, "05b-campaigns")

    campaign = await dash.app.feature(CampaignFeature).repo.require("default", "spring-tents")
    assert campaign.approved_text.strip() == draft and campaign.approved_by == "console:mod"
    assert len(dash.app.feature(CampaignFeature).scheduler.pending(campaign.id)) == 1
    actions = [e.action for e in await dash.app.feature(DashboardFeature).audit.latest(
        "default")]
    assert actions[:3] == ["campaign.approve", "campaign.preview", "campaign.create"]


async def test_erase_a_member(dash: Running, redis_client: aioredis.Redis) -> None:
    for text in ("I love hiking in the mountains", "looking for a light tent for two",
                 "what sleeping bag for winter camping?"):
        await dash.console.say(text, role=Privilege.MEMBER, user="bob")
    profiles = dash.app.feature(ProfilesFeature)
    await dash.app.router.drain()
    await profiles.flush()
    assert await profiles.profile("default", "console:bob") is not None
    async with chromium() as browser:
        page = await new_page(browser)
        await sign_in(page, await dash.link())
        await page.get_by_role("link", name="Members").click()
        await screenshot(page, "06-members")
        await page.get_by_role("link", name="console:bob").click()
        await expect(page.get_by_role("heading", name="console:bob")).to_be_visible()
        await screenshot(page, "07-member")
        async with page.expect_download() as downloading:
            await page.get_by_role("link", name=re.compile("Export everything")).click()
        exported = json.loads(Path(await (await downloading.value).path()).read_text())
        assert exported["member"] == "console:bob" and exported["profile"]["messages_seen"] == 3

        await page.get_by_label("Type console:bob to confirm").fill("console:bob")
        await page.get_by_role("button", name="Erase this member").click()
        await expect(page.get_by_role("status")).to_contain_text("Erased everything")

    assert await profiles.profile("default", "console:bob") is None
    assert (await profiles.export("default", "console:bob"))["profile"] is None
    audit = await dash.app.feature(DashboardFeature).audit.latest("default")
    assert audit[0].action == "member.erase"
    assert audit[0].detail == pseudonym("default", "console:bob")
    text = json.dumps([e.detail for e in audit])
    assert "console:bob" not in text  # the export's entry was pseudonymised too


async def test_forged_form_and_another_merchants_page_are_refused(dash: Running) -> None:
    async with chromium() as browser:
        page = await new_page(browser)
        await sign_in(page, await dash.link())
        await page.get_by_role("link", name="Persona & settings").click()
        await screenshot(page, "08-persona")
        await page.get_by_label("Bot's name").fill("Forged")
        # A form posted with another token, as a page on another site would have to.
        await page.evaluate("document.querySelectorAll('input[name=csrf]')"
                            ".forEach(i => i.value = 'not-the-session-token')")
        await page.get_by_role("button", name="Save persona").click()
        await expect(page.get_by_role("heading", name="Form refused")).to_be_visible()
        assert (await load_persona(dash.app.store, "default")).name == "Shopkeep"

        response = await page.goto(f"{dash.url}/m/rival/")
        assert response is not None and response.status == 401
        await expect(page.get_by_role("heading", name="Sign in to the rival dashboard")
                     ).to_be_visible()
        response = await page.goto(f"{dash.url}/m/rival/members")
        assert response is not None and response.status == 401


async def test_pages_read_well_on_a_phone_and_show_the_shop(dash: Running) -> None:
    await _some_activity(dash)
    async with chromium() as browser:
        page = await new_page(browser, phone=True)
        await sign_in(page, await dash.link())
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the overview scrolls sideways on a phone ({width}px)"
        await expect(page.get_by_text("answered from your sources")).to_be_visible()
        await screenshot(page, "09-overview-phone")
        await page.goto(f"{dash.url}/m/default/members")
        assert await page.evaluate("document.documentElement.scrollWidth") <= 390
        await screenshot(page, "10-members-phone")
        # Keyboard: the first Tab reaches the skip link, which moves focus to the content.
        await page.keyboard.press("Tab")
        assert await page.evaluate("document.activeElement.className") == "skip"

        wide = await new_page(browser)
        await sign_in(wide, await dash.link(user="mod3"))
        figures = await wide.locator(".figures .value").all_inner_texts()
        assert figures[0] != "0" and figures[1].endswith("%"), figures
        await screenshot(wide, "11-overview")
        for path, name in (("/faq", "13-faq"), ("/catalog", "14-catalog"),
                           ("/audit", "12-audit")):
            await wide.goto(f"{dash.url}/m/default{path}")
            await screenshot(wide, name)


async def _some_activity(dash: Running) -> None:
    """The demo shop's FAQ and catalog (really embedded), a few weeks of activity written
    through the analytics API with past dates, and members asking today."""
    knowledge = dash.app.feature(KnowledgeFeature).knowledge
    await knowledge.import_faq("default", parse_faq((DEMO / "faq.yaml").read_bytes(),
                                                    "faq.yaml"))
    await knowledge.import_catalog("default", parse_catalog(
        (DEMO / "catalog.csv").read_bytes(), "catalog.csv"))
    analytics = dash.app.feature(GrowthFeature).analytics
    now = time.time()
    for day in range(1, 14):
        for n in range(4 + (day * 7) % 9):
            member = f"telegram:{1000 + (n * day) % 23}"
            await analytics.record_message("default", "telegram", member, member,
                                           now - day * 86400)
            await analytics.record_answer(
                "default", "telegram", n % 4 != 0,
                (Citation("faq", "returns-policy", "Returns policy"),) if n % 4 else (),
                now - day * 86400)
        await analytics.record_interests("default", ["tents", "sleeping bags"][: 1 + day % 2],
                                         now - day * 86400)
    for user, text in (("ann", "do you ship to Canada?"), ("ben", "hello all!"),
                       ("cat", "what is your return policy?"), ("dan", "any discount codes?")):
        await dash.console.say(text, role=Privilege.MEMBER, user=user)
    await dash.app.router.drain()
    await dash.app.feature(ProfilesFeature).flush()


async def test_signed_out_page_has_no_session_left(dash: Running) -> None:
    async with chromium() as browser:
        page: Page = await new_page(browser)
        await sign_in(page, await dash.link())
        await page.get_by_role("button", name="Sign out").click()
        await expect(page.get_by_role("heading", name="Signed out")).to_be_visible()
        await page.goto(f"{dash.url}/m/default/")
        await expect(page.get_by_role("heading", name="Sign in to the default dashboard")
                     ).to_be_visible()
