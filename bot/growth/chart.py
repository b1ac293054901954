"""The weekly digest's PNG: activity per day, top interests, referrals credited per day."""

from __future__ import annotations

import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # no display in a bot process; selected before any figure exists

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def render_digest_chart(title: str, daily: Sequence[tuple[str, int, int, int]],
                        interests: Sequence[tuple[str, int, int]]) -> bytes:
    """A 3-panel PNG. Uses `Figure` directly (not pyplot) so no global state is shared
    between concurrent digests.

    Args:
        title: shown above the panels.
        daily: (day, active members, messages, referrals credited), oldest first.
        interests: (interest, mentions this week, mentions the week before), top first.
    """
    figure = Figure(figsize=(10, 3.6), dpi=100)
    FigureCanvasAgg(figure)
    figure.suptitle(title, fontsize=12)
    activity, tops, referrals = figure.subplots(1, 3)
    labels = [day[5:] for day, *_ in daily]
    positions = range(len(daily))
    activity.bar(positions, [m for _, _, m, _ in daily], color="#9ecae1", label="messages")
    activity.plot(positions, [a for _, a, _, _ in daily], color="#08519c", marker="o",
                  label="active members")
    activity.set_xticks(list(positions), labels, rotation=45, fontsize=8)
    activity.set_title("Activity", fontsize=10)
    activity.legend(fontsize=7, loc="upper left")
    if interests:
        names = [name for name, _, _ in interests][::-1]
        tops.barh(names, [now for _, now, _ in interests][::-1], color="#31a354", label="week")
        tops.barh(names, [before for _, _, before in interests][::-1], color="none",
                  edgecolor="#555555", label="week before")
        tops.legend(fontsize=7, loc="lower right")
    else:
        tops.text(0.5, 0.5, "no interests recorded", ha="center", va="center", fontsize=9)
        tops.set_axis_off()
    tops.set_title("Top interests", fontsize=10)
    referrals.bar(positions, [r for *_, r in daily], color="#fd8d3c")
    referrals.set_xticks(list(positions), labels, rotation=45, fontsize=8)
    referrals.set_title("Referrals credited", fontsize=10)
    referrals.yaxis.get_major_locator().set_params(integer=True)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
