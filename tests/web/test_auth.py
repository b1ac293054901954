"""Sign-in by one-time link, sessions and cookies, CSRF on every form, and merchant scoping,
over HTTP against the real server (uvicorn in the bot's loop, real Redis, real models)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import redis.asyncio as aioredis

from bot.dashboard import DashboardFeature
from bot.dashboard.access import secret_hash
from bot.events import Privilege
from bot.persona import load_persona
from bot.storage.keys import Keys
from lm_service.api import LMClient
from tests.web.conftest import Running, csrf_of, running_dashboard, sign_in


async def test_a_moderator_signs_in_with_a_link_that_works_once(dash: Running) -> None:
    link = await dash.link()
    assert link.startswith(f"{dash.url}/m/default/signin/")
    async with httpx.AsyncClient() as browser:
        preview = await browser.get(link)  # a chat app fetching the link for a preview
        assert preview.status_code == 200 and "Sign in" in preview.text
        signed_in = await sign_in(browser, link)
        assert signed_in.status_code == 303 and signed_in.headers["location"] == "/m/default/"
        cookie = signed_in.headers["set-cookie"]
        assert "shopkeep_session=" in cookie and "HttpOnly" in cookie
        assert "SameSite=lax" in cookie and "Path=/m/default" in cookie
        overview = await browser.get(f"{dash.url}/m/default/")
        assert overview.status_code == 200 and "Overview" in overview.text
        assert overview.headers["cache-control"] == "no-store"
        assert "frame-ancestors 'none'" in overview.headers["content-security-policy"]

    async with httpx.AsyncClient() as someone_else:  # the same link, a second time
        again = await sign_in(someone_else, link)
        assert again.status_code == 403 and "already used" in again.text
        assert "shopkeep_session" not in again.headers.get("set-cookie", "")
        assert (await someone_else.get(f"{dash.url}/m/default/")).status_code == 401


async def test_an_expired_or_made_up_link_is_refused(dash: Running,
                                                     redis_client: aioredis.Redis) -> None:
    link = await dash.link()
    token = link.rsplit("/", 1)[1]
    # The link's time runs out (Redis expiry, as after dashboard_link_ttl_s).
    await redis_client.pexpire(Keys("default").dashboard_link(secret_hash(token)), 1)
    async with httpx.AsyncClient() as browser:
        expired = await sign_in(browser, link)
        assert expired.status_code == 403 and "expired" in expired.text
        made_up = await sign_in(browser, link[:-4] + "AAAA")
        assert made_up.status_code == 403
        assert (await browser.get(f"{dash.url}/m/default/")).status_code == 401


async def test_members_get_no_link_and_links_are_private(dash: Running) -> None:
    [refused] = await dash.console.say("/dashboard", role=Privilege.MEMBER, user="joe")
    assert "for moderators only" in refused.text and "http" not in refused.text
    [given] = await dash.console.say("/dashboard", role=Privilege.MODERATOR, user="mod")
    assert given.private and "works once" in given.text


async def test_sign_in_needs_the_link_pages_own_nonce(dash: Running) -> None:
    """Another site cannot post a link of its own into a moderator's browser (login CSRF),
    and trying does not use the link up."""
    link = await dash.link()
    async with httpx.AsyncClient() as attacker_page:
        forged = await attacker_page.post(link, data={"nonce": "guessed"})
        assert forged.status_code == 403
    async with httpx.AsyncClient() as browser:
        assert (await sign_in(browser, link)).status_code == 303


async def test_forms_without_the_session_csrf_token_change_nothing(
        dash: Running, redis_client: aioredis.Redis) -> None:
    async with httpx.AsyncClient(base_url=dash.url) as browser:
        await sign_in(browser, await dash.link())
        page = await browser.get("/m/default/persona")
        token = csrf_of(page.text)
        form = {"name": "Ranger", "shop_name": "our shop", "tone": "Friendly, concise and "
                "helpful.", "greeting": "Hi! Ask me anything about the shop.", "signoff": ""}
        for bad in ({}, {"csrf": ""}, {"csrf": token[:-2] + "xx"}):
            refused = await browser.post("/m/default/persona", data={**form, **bad})
            assert refused.status_code == 403 and "Nothing was changed" in refused.text
        assert (await load_persona(dash.app.store, "default")).name == "Shopkeep"
        assert await redis_client.llen(Keys("default").dashboard_audit()) == 1  # the sign-in

        saved = await browser.post("/m/default/persona", data={**form, "csrf": token})
        assert saved.status_code == 303
        assert (await load_persona(dash.app.store, "default")).name == "Ranger"
        [latest, _] = await dash.app.feature(DashboardFeature).audit.latest("default")
        assert (latest.member, latest.action, latest.detail) == ("console:mod", "persona.set",
                                                                 "name: Ranger")
        audit = await browser.get("/m/default/audit")
        assert "persona.set" in audit.text and "name: Ranger" in audit.text


async def test_a_session_never_reaches_another_merchants_pages(
        redis_url: str, redis_client: aioredis.Redis, tmp_path: Path,
        lm_client: LMClient) -> None:
    async with running_dashboard(redis_url, tmp_path, lm_client) as dash:
        other = Keys("rival")
        await redis_client.hset(other.campaign("secret-sale"), mapping={"merchant": "rival"})
        await redis_client.hset(other.profile("telegram:99"), mapping={"meta": json.dumps(
            {"msgs": 3})})
        async with httpx.AsyncClient(base_url=dash.url) as browser:
            await sign_in(browser, await dash.link())
            session_id = browser.cookies.get("shopkeep_session", path="/m/default")
            assert session_id and (await browser.get("/m/default/")).status_code == 200
            # Another merchant's pages: the browser sends no cookie there...
            for path in ("/m/rival/", "/m/rival/members/telegram:99", "/m/rival/audit"):
                refused = await browser.get(path)
                assert refused.status_code == 401 and "Sign in to the rival" in refused.text
            # ...and a session id carried there by hand is not that merchant's.
            forged = await browser.get("/m/rival/campaigns/secret-sale",
                                       headers={"cookie": f"shopkeep_session={session_id}"})
            assert forged.status_code == 401
            # Its records are not reachable by name from this merchant's pages either.
            assert (await browser.get("/m/default/campaigns/secret-sale")).status_code == 404
            member = await browser.get("/m/default/members/telegram:99")
            assert member.status_code == 404 and "no profile" in member.text


async def test_signing_out_ends_the_session(dash: Running,
                                            redis_client: aioredis.Redis) -> None:
    async with httpx.AsyncClient(base_url=dash.url) as browser:
        await sign_in(browser, await dash.link())
        session_id = browser.cookies.get("shopkeep_session", path="/m/default")
        assert session_id is not None
        page = await browser.get("/m/default/")
        out = await browser.post("/m/default/signout", data={"csrf": csrf_of(page.text)})
        assert out.status_code == 200 and "signed out" in out.text
        key = Keys("default").dashboard_session(secret_hash(session_id))
        assert not await redis_client.exists(key)
        stale = await browser.get("/m/default/", headers={
            "cookie": f"shopkeep_session={session_id}"})
        assert stale.status_code == 401


async def test_cookies_are_secure_behind_an_https_proxy(dash: Running) -> None:
    link = await dash.link()
    # uvicorn trusts X-Forwarded-Proto from loopback, where a TLS proxy would sit. A client
    # keeps Secure cookies for https only, so the nonce cookie is carried here by hand.
    async with httpx.AsyncClient(headers={"x-forwarded-proto": "https"}) as browser:
        page = await browser.get(link)
        nonce_cookie = page.headers["set-cookie"]
        assert "secure" in _attributes(nonce_cookie)
        nonce = nonce_cookie.split(";")[0].split("=", 1)[1]
        signed_in = await browser.post(link, data={"nonce": nonce},
                                       headers={"cookie": f"shopkeep_signin={nonce}"})
        assert signed_in.status_code == 303
        session_cookie = next(c for c in signed_in.headers.get_list("set-cookie")
                              if c.startswith("shopkeep_session="))
        assert {"secure", "httponly", "samesite=lax"} <= _attributes(session_cookie)


def _attributes(cookie: str) -> set[str]:
    return {part.strip().lower() for part in cookie.split(";")[1:]}


async def test_every_page_renders_for_a_signed_in_moderator(dash: Running) -> None:
    async with httpx.AsyncClient(base_url=dash.url) as browser:
        await sign_in(browser, await dash.link())
        for path in ("/", "/?days=30", "/faq", "/faq/new", "/catalog", "/import?kind=catalog",
                     "/gaps", "/campaigns", "/members", "/persona", "/tickets", "/audit"):
            page = await browser.get(f"/m/default{path}")
            assert page.status_code == 200, (path, page.status_code)
            assert '<main id="main"' in page.text and 'aria-current="page"' in page.text, path
            assert float(page.headers["server-timing"].split("dur=")[1]) >= 0
        chart = await browser.get("/m/default/digest.png")
        assert chart.headers["content-type"] == "image/png"
        assert chart.content.startswith(b"\x89PNG")
        for missing in ("/faq/nope", "/catalog/NOPE", "/campaigns/nope", "/members/x:1",
                        "/jobs/abc123"):
            assert (await browser.get(f"/m/default{missing}")).status_code == 404, missing
