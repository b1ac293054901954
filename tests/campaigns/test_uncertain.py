"""A delivery counts as sent only with a message id; one whose fate the platform cannot show
is "uncertain": never counted as sent, never posted again by itself, told to the moderator,
and posted again by `/campaign resend` once a moderator has checked it is missing."""

from __future__ import annotations

from bot.campaigns.models import Delivery
from bot.events import Outbound, Platform
from tests.campaigns.conftest import Build, RecordingAdapter, say
from tests.campaigns.test_runner import RUN, TEXT, add_campaign


async def test_an_uncertain_target_is_not_counted_and_the_moderator_is_told(
        make_feature: Build) -> None:
    adapter = RecordingAdapter(Platform.DISCORD, unsure={"c2"})
    feature = await make_feature([adapter], start=False)
    campaign = await add_campaign(feature, targets="discord:c1,discord:c2,discord:c3")
    result = await feature.runner.run(campaign.id, RUN)
    assert (result.status, result.sent, result.failed, result.uncertain) == ("done", 2, 0, 1)
    log = await feature.repo.deliveries("default", "spring", RUN)
    assert log["discord:c2"].status == "uncertain" and log["discord:c2"].message_ids == []
    info = await feature.repo.run_info("default", "spring", RUN)
    assert (info["sent"], info["uncertain"]) == ("2", "1")
    [told] = [o.text for o in adapter.to("mod") if "can't tell whether" in o.text]
    assert "discord:c2" in told and "/campaign resend spring" in told
    # Another attempt of the run (a resumed process) leaves it for the moderator.
    await feature.repo.record_run("default", "spring", RUN, 0.0, status="running")
    again = await feature.runner.run(campaign.id, RUN)
    assert (again.sent, again.uncertain) == (2, 1)
    assert [o.destination.channel_id for o in adapter.sent
            if o.destination and o.destination.channel_id] == ["c1", "c3"]


async def test_a_send_without_a_message_id_is_not_a_delivery(make_feature: Build) -> None:
    class Silent(RecordingAdapter):
        async def send(self, outbound: Outbound) -> list[str]:
            await super().send(outbound)
            return []  # what the Telegram adapter answered a retry before: "done", no proof

    adapter = Silent(Platform.TELEGRAM)
    feature = await make_feature([adapter], start=False)
    campaign = await add_campaign(feature, targets="telegram:-1001")
    result = await feature.runner.run(campaign.id, RUN)
    assert (result.sent, result.uncertain) == (0, 1)
    log = await feature.repo.deliveries("default", "spring", RUN)
    assert log["telegram:-1001"].status == "uncertain"


async def test_a_sent_record_without_a_message_id_is_not_trusted(make_feature: Build) -> None:
    # Left by the old sender (issue 16): "sent" with no message. Not counted, not re-posted.
    adapter = RecordingAdapter(Platform.DISCORD)
    feature = await make_feature([adapter], start=False)
    campaign = await add_campaign(feature, targets="discord:c1,discord:c2")
    await feature.repo.record_delivery("default", "spring", RUN,
                                       Delivery("discord:c1", "sent", message_ids=[]))
    result = await feature.runner.run(campaign.id, RUN)
    assert (result.sent, result.uncertain, result.resumed) == (1, 1, 0)
    assert [o.destination.channel_id for o in adapter.sent
            if o.destination and o.destination.channel_id] == ["c2"]


async def test_resend_posts_an_uncertain_delivery_once(make_feature: Build) -> None:
    adapter = RecordingAdapter(Platform.DISCORD, unsure={"c2"})
    feature = await make_feature([adapter])
    campaign = await add_campaign(feature, targets="discord:c1,discord:c2")
    await feature.runner.run(campaign.id, RUN)
    history = await say(feature, "/campaign history spring")
    assert "1 uncertain" in history and "discord:c2: uncertain" in history

    reply = await say(feature, "/campaign resend spring discord:c2")
    assert f"Posted run {RUN} of spring to discord:c2 again" in reply
    assert [o.text for o in adapter.to("c2")] == [TEXT]
    log = await feature.repo.deliveries("default", "spring", RUN)
    assert log["discord:c2"].status == "sent" and log["discord:c2"].message_ids
    assert "re-sent by discord:mod" in log["discord:c2"].detail
    info = await feature.repo.run_info("default", "spring", RUN)
    assert (info["sent"], info["uncertain"]) == ("2", "0")

    refused = await say(feature, "/campaign resend spring discord:c2")
    assert "No recent run of spring is uncertain about discord:c2" in refused
    refused = await say(feature, f"/campaign resend spring discord:c1 {RUN}")
    assert "is sent in run" in refused
    assert len(adapter.to("c2")) == 1


async def test_the_moderator_is_told_in_the_channel_they_created_it_in_when_dms_fail(
        make_feature: Build) -> None:
    # a configured admin: a DM carries no moderator rights of its own
    feature = await make_feature([RecordingAdapter(Platform.DISCORD)], admin_ids=["discord:mod"])
    await say(feature, '/campaign create spring "in 2h" here "Spring tents are in"')
    await say(feature, '/campaign create quiet "in 2h" discord:chan-1 "Spring tents are in"',
              channel=None)
    spring = await feature.repo.require("default", "spring")
    quiet = await feature.repo.require("default", "quiet")
    assert (spring.notify_user, spring.notify_channel) == ("mod", "chan-1")
    assert (quiet.notify_user, quiet.notify_channel) == ("mod", "")  # set up in a DM
