"""The moderators' /campaign commands through the real router: clear errors for bad input,
nothing stored on a refusal, and the list/edit/pause/resume/delete round trip."""

from __future__ import annotations

from bot.events import Platform, Privilege
from tests.campaigns.conftest import Build, RecordingAdapter, load_catalog, say
from tests.faults.support import snapshot


async def test_bad_input_gets_clear_errors_and_stores_nothing(make_feature: Build) -> None:
    feature = await make_feature([RecordingAdapter(Platform.DISCORD)])
    await load_catalog(feature.core.store)
    cases = {
        '/campaign create a "cron 61 9 * * *" here "Spring tents"': "Bad cron minute field '61'",
        '/campaign create a "cron 0 9 * * funday" here "Spring tents"': "day of week",
        '/campaign create a 2020-01-01T09:00 here "Spring tents"': "is in the past",
        '/campaign create a "every 1d" discord:999 "Spring tents"':
            "I don't know the channel discord:999",
        '/campaign create a "every 1d" slack:1 "Spring tents"': "Unknown platform 'slack'",
        '/campaign create a "every 1d" here "Spring tents" tz=Moon/Base': "Unknown time zone",
        '/campaign create a "every 1d" here "Spring tents" products=NOPE-1':
            "no product with SKU 'NOPE-1'",
        '/campaign create a "every 1d" here "Spring tents" products=category:boats':
            "no category 'boats'",
        '/campaign create a "every 1d" here "Spring tents" segment=interest:tents>>2':
            "interest",
        '/campaign create "Bad Name!" "every 1d" here "Spring tents"': "must be 1-40 lowercase",
        "/campaign approve ghost": "There is no campaign 'ghost'",
    }
    for command, expected in cases.items():
        reply = await say(feature, command)
        assert expected in reply, (command, reply)
    assert await feature.repo.names("default") == []
    assert feature.scheduler.pending("default/a") == []


async def test_out_of_range_times_and_periods_are_refused_with_the_allowed_range(
        make_feature: Build, redis_url: str) -> None:
    """These raised OverflowError ("something went wrong") and stored nothing by accident."""
    feature = await make_feature([RecordingAdapter(Platform.DISCORD)])
    await load_catalog(feature.core.store)
    await say(feature, '/campaign create kept "every 1d" here "Spring tents"')
    before = await snapshot(redis_url)
    cases = {
        '/campaign create a "in 99999999999999d" here "Spring tents"':
            "'99999999999999d' is too long; the longest is 366d (a year).",
        '/campaign create a "every 99999999999999d" here "Spring tents"':
            "'99999999999999d' is too long; the longest is 366d (a year).",
        f'/campaign create a "every {"9" * 3000}d" here "Spring tents"':
            "...' is too long; the longest is 366d (a year).",
        '/campaign create a "in 367d" here "Spring tents"': "the longest is 366d (a year)",
        '/campaign create a 9999-12-31T23:59 here "Spring tents"':
            "9999-12-31T23:59 is too far ahead; pick a time within 366d (a year), before ",
        '/campaign create a "every 1d" here "Spring tents" segment=active:99999999d':
            "`active:99999999d`: the longest period is 3650d (10 years).",
        '/campaign edit kept schedule every 99999999999999d':
            "the longest is 366d (a year)",
    }
    for command, expected in cases.items():
        reply = await say(feature, command)
        assert expected in reply, (command, reply)
        assert "went wrong" not in reply
    assert await snapshot(redis_url) == before


async def test_members_cannot_run_campaign_commands(make_feature: Build) -> None:
    feature = await make_feature([RecordingAdapter(Platform.DISCORD)])
    reply = await say(feature, '/campaign create a "every 1d" here "Spring tents"', user="joe",
                      role=Privilege.MEMBER)
    assert "for moderators only" in reply
    assert await feature.repo.names("default") == []


async def test_create_shows_five_runs_and_the_round_trip_works(make_feature: Build) -> None:
    discord = RecordingAdapter(Platform.DISCORD)
    feature = await make_feature([discord])
    await load_catalog(feature.core.store)
    created = await say(feature, '/campaign create weekly "cron 0 9 * * mon" here '
                        '"Weekly tent tips" tz=Europe/Berlin products=category:tents')
    assert "cron '0 9 * * mon' (Europe/Berlin)" in created
    runs = [line for line in created.splitlines() if line.strip().startswith("•")]
    assert len(runs) == 5 and all("Mon" in r and "09:00:00 CET" in r for r in runs)
    assert len(feature.scheduler.pending("default/weekly")) == 1
    listing = await say(feature, "/campaign list")
    assert "weekly — awaiting approval" in listing and "discord:chan-1" in listing

    assert "no draft to approve" in await say(feature, "/campaign approve weekly")
    edited = await say(feature, "/campaign edit weekly text Our own words about tents.")
    assert "draft" in edited
    assert "Approved" in await say(feature, "/campaign approve weekly")
    stored = await feature.repo.get("default", "weekly")
    assert stored is not None and stored.approved_text == "Our own words about tents."
    assert "approved;" in await say(feature, "/campaign list")

    rescheduled = await say(feature, '/campaign edit weekly schedule "every 2h"')
    assert "every 2h" in rescheduled and rescheduled.count("•") == 5
    assert len(feature.scheduler.pending("default/weekly")) == 1
    assert "Unknown time zone" in await say(feature, "/campaign edit weekly timezone Nowhere")

    assert "withdrawn" in await say(feature, "/campaign edit weekly brief Winter is coming")
    stored = await feature.repo.get("default", "weekly")
    assert stored is not None and not stored.approved

    await say(feature, "/campaign pause weekly")
    assert feature.scheduler.pending("default/weekly") == []
    assert "Next run" in await say(feature, "/campaign resume weekly")
    assert len(feature.scheduler.pending("default/weekly")) == 1
    assert "deleted" in await say(feature, "/campaign delete weekly")
    assert feature.scheduler.pending("default/weekly") == []
    assert await feature.repo.names("default") == []


async def test_a_channel_the_bot_has_seen_becomes_a_valid_target(make_feature: Build) -> None:
    # The moderator writes from a DM, which only a configured admin account may.
    feature = await make_feature([RecordingAdapter(Platform.TELEGRAM)], admin_ids=["discord:mod"])
    # A member's question in a Telegram group: the observer notes the channel (and question).
    await say(feature, "does the 2P tent fit two people?", user="ann", role=Privilege.MEMBER,
              platform=Platform.TELEGRAM, channel="-100777", community="-100777")
    reply = await say(feature, '/campaign create tg "every 1d" telegram:-100777 "Tent tips"',
                      channel=None)
    assert "Campaign tg created" in reply
    assert await feature.repo.questions_since("default", 0) == [
        "does the 2P tent fit two people?"]


async def test_offers_opt_in_and_out(make_feature: Build) -> None:
    feature = await make_feature([RecordingAdapter(Platform.DISCORD)])
    assert "direct message" in await say(feature, "/offers on", user="ann",
                                         role=Privilege.MEMBER)
    assert await feature.repo.all_opted_in("default") == ["discord:ann"]
    await say(feature, "/offers off", user="ann", role=Privilege.MEMBER)
    assert await feature.repo.all_opted_in("default") == []


async def test_a_segment_of_several_terms_fits_one_option(make_feature: Build) -> None:
    feature = await make_feature([RecordingAdapter(Platform.DISCORD)])
    reply = await say(feature, '/campaign create tents "every 1d" here,dm "Tent week" '
                      "segment=interest:tents>0.3,active:30d")
    assert "audience interest:tents>0.3 active:30d" in reply
    stored = await feature.repo.get("default", "tents")
    assert stored is not None and stored.segment == "interest:tents>0.3 active:30d"
