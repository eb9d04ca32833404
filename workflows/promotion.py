"""The promotion rule: a release comes to an environment with `promote_from` only once it
is live in the source environment and has run there for its soak time without a crash."""

from __future__ import annotations

from datetime import datetime

from storage import ReleaseRecord, Storage
from workflows.activity_models import PromotedRelease, PromotionCheck
from workflows.runtimes.base import ReleaseHandle

# The incidents that are a release's crash (see workflows.supervision_rounds).
CRASH_KINDS = ("restarted", "crash_looping")


async def live_release(storage: Storage, target_name: str) -> ReleaseRecord | None:
    """The release `target_name` (a bot, or "bot.environment") runs now, if any."""
    bot = await storage.get_bot(target_name)
    if bot is None or bot.active_release is None:
        return None
    record = await storage.get_release(target_name, bot.active_release)
    return record if record is not None and record.status == "active" else None


def soak_progress(done: float, wanted: float) -> str:
    if wanted >= 120:
        return f"{int(done // 60)} of {wanted / 60:g} minutes"
    return f"{int(done)} of {wanted:g} seconds"


class PromotionRefused(Exception):
    """A release that may not come to the environment now; the message says why."""


async def promotable(storage: Storage, check: PromotionCheck, now: datetime) -> PromotedRelease:
    """What of `check.source`'s live release may come now (its image by digest);
    PromotionRefused saying why when it may not."""
    bot_name, _, environment = check.source.partition(".")
    release = await live_release(storage, check.source)
    if release is None:
        raise PromotionRefused(
            f"Nothing is live in {environment} for **{bot_name}**: only a release live in "
            f"{environment} may be promoted; deploy it there first."
        )
    named = f"release #{release.number} ({release.version}) of **{bot_name}**"
    subject = "R" + named[1:]
    if release.version != check.version:
        raise PromotionRefused(
            f"{environment} runs {named}, not {check.version}: only the release live in "
            f"{environment} may come here (`/promote`)."
        )
    crashes = await storage.incidents_of(check.source, kinds=CRASH_KINDS, since=release.went_live)
    if crashes:
        raise PromotionRefused(
            f"{subject} crashed in {environment} since it went live: it may not be "
            f"promoted; deploy a fixed release to {environment} first."
        )
    live_for = (now - datetime.fromisoformat(release.went_live)).total_seconds()
    if live_for < check.soak:
        raise PromotionRefused(
            f"{subject} has been live in {environment} for "
            f"{soak_progress(live_for, check.soak)}: promote it once it has soaked."
        )
    if release.runtime_handle is None:
        return PromotedRelease()
    return PromotedRelease(image=ReleaseHandle.model_validate_json(release.runtime_handle).image)
