"""The progress board at Discord's real pace: many people deploying at once.

    .venv/bin/python -m bench.board [--scenarios 30x1,100x1,30x10,100x10]

Each scenario (`NxC`: N people each deploy their own bot at the same moment, in C
channels of one server) runs a fresh `shipcord run` (its own process) against a fresh
Discord double (another process, Discord's buckets, not announced, so that only
shipcord's pacing keeps 429s away) on one Temporal dev server. Measured from outside:

* answer: from the person's /deploy to the answer they see (p50, p95, max);
* final: from the workflow's end (Temporal's close time) to the message's final form;
* fresh: from each step change in the workflow (its history) to the first edit that shows
  that step or a later one, while the channel is within Discord's limits;
* writes per deployment (answers, edits through interactions, channel posts and edits),
  429s, status queries per edit sent (counted by Temporal's frontend), and CPU seconds of
  the shipcord process per deployment.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType

from bench.common import sleeper_targets
from bench.stack import (
    OPERATIONS,
    Temporal,
    discord_double,
    ready,
    shipcord_env,
    shipcord_run,
    temporal_server,
)
from tests.engine.harness import kill_release_processes
from workflows.models import DeploymentResult

# Each deployment stays a moment in its health check, as a real bot does while it starts.
HEALTHY_AFTER = 1.0
SCENARIO_TIMEOUT = 300.0
STEPS = [
    "Validating configuration",
    "Creating bot record",
    "Deploying to platform",
    "Running health check",
]
FINAL = len(STEPS)  # any final form counts as past every step
ACTIVITY_STEPS = {
    "validate_deployment": 0,
    "create_bot_record": 1,
    "deploy_to_platform": 2,
    "run_health_check": 3,
}
FINAL_COLOURS = {0x57F287, 0xED4245, 0x95A5A6}


@dataclass
class Spread:
    p50: float
    p95: float
    max: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        ordered = sorted(values) or [0.0]
        p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
        return cls(round(statistics.median(ordered), 3), round(p95, 3), round(ordered[-1], 3))


@dataclass
class BoardResult:
    deployments: int
    channels: int
    answer_s: Spread
    acknowledged_privately: int  # answers that came after a private "thinking…"
    too_late: int  # interactions acknowledged after Discord's 3 s (refused by Discord)
    final_s: Spread
    fresh_s: Spread
    all_final_s: float  # from the first /deploy to the last message in its final form
    writes_per_deployment: float
    answers: int
    interaction_edits: int
    channel_posts: int
    channel_edits: int
    rate_limited: int
    retried_writes: int  # writes Discord refused for a while (429, 5xx), each tried again
    non_final: int  # messages left without their final form (must be 0)
    status_queries_per_edit: float
    describes_per_deployment: float
    history_polls_per_deployment: float
    cpu_s_per_deployment: float


def at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def answered_at(interaction: dict[str, Any]) -> float | None:
    """When the person first saw an answer: a message callback, or the first followup
    after a "thinking" acknowledgement."""
    for response in interaction["responses"]:
        if response["kind"] == "callback" and response["type"] == 4:
            return at(response["at"])
        if response["kind"] == "followup":
            return at(response["at"])
    return None


def shown_step(version: dict[str, Any]) -> int:
    """Which step a version of a progress message shows (FINAL once finished); an embed,
    or the text block of shipcord before embeds (`--shipcord-tree` may run one)."""
    embeds = version["embeds"]
    if embeds:
        text, final = embeds[0].get("description") or "", embeds[0].get("color") in FINAL_COLOURS
    else:
        text = version["content"]
        final = any(f"State: {end}" in text for end in ("succeeded", "failed", "cancelled"))
    if final:
        return FINAL
    headline = next((line for line in text.split("\n") if line.startswith("**")), "")
    step = headline.split("**")[1] if headline.count("**") >= 2 else ""
    return STEPS.index(step) if step in STEPS else -1


def step_changes(events: Iterable[Any]) -> list[tuple[int, float]]:
    """(step, when) for each step the workflow entered, and its end, from its history."""
    changes = []
    for event in events:
        when = event.event_time.ToDatetime().timestamp()
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            step = ACTIVITY_STEPS.get(
                event.activity_task_scheduled_event_attributes.activity_type.name
            )
            if step is not None and (not changes or changes[-1][0] != step):
                changes.append((step, when))
        elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
            changes.append((FINAL, when))
    return changes


def freshness(changes: list[tuple[int, float]], versions: list[dict[str, Any]]) -> list[float]:
    """For each change, the delay until a version showing it (or a later step) was sent."""
    shown = [(shown_step(version), at(version["at"])) for version in versions]
    delays = []
    for step, when in changes:
        sent = next((t for s, t in shown if s >= step and t >= when - 0.05), None)
        if sent is not None:
            delays.append(max(0.0, sent - when))
    return delays


async def run_scenario(
    temporal: Temporal, work: Path, *, count: int, channels: int, tree: Path | None = None
) -> BoardResult:
    tag = uuid.uuid4().hex[:6]
    names = [f"b{tag}-{n}" for n in range(count)]
    (work / "targets.toml").write_text(
        sleeper_targets(f"b{tag}", count, healthy_after=HEALTHY_AFTER), encoding="utf-8"
    )
    async with discord_double(users=count, channels=channels) as double:
        guild = double.ids["guilds"]["bench"]
        channel_ids = [guild["channels"][f"c{n}"] for n in range(channels)]
        env = shipcord_env(work, double, temporal=temporal.address, task_queue=f"board-{tag}")
        async with shipcord_run(work, env, tree=tree) as shipcord:
            await ready(shipcord, double)
            cpu_before, calls_before = shipcord.cpu_seconds(), await temporal.calls()
            started = time.time()

            async def deploy(n: int) -> tuple[str, float]:
                sent = time.time()
                interaction = await double.control.dispatch(
                    bot="shipcord",
                    user=f"user-{n}",
                    command="deploy",
                    options={"bot": names[n], "version": "1.0.0"},
                    channel_id=channel_ids[n % channels],
                )
                return interaction["id"], sent

            dispatched = await asyncio.gather(*(deploy(n) for n in range(count)))
            replies = await asyncio.gather(
                *(double.control.wait_for_reply(i, timeout=60) for i, _ in dispatched)
            )
            workflow_ids = [reply["reply"]["content"].split("`")[3] for reply in replies]
            # Waiting on the messages, not on Temporal: the calls counted are shipcord's.
            state = await wait_until_final(double, workflow_ids, channel_ids)
            cpu = shipcord.cpu_seconds() - cpu_before
            calls = await temporal.calls()
            handles = [
                temporal.client.get_workflow_handle(w, result_type=DeploymentResult)
                for w in workflow_ids
            ]
            results = await asyncio.gather(*(handle.result() for handle in handles))
            assert all(result.success for result in results), results
    kill_release_processes(work)
    descriptions = await asyncio.gather(*(handle.describe() for handle in handles))
    histories = await asyncio.gather(*(handle.fetch_history() for handle in handles))
    return summarise(
        count=count,
        channels=channels,
        state=state,
        dispatched=dict(dispatched),
        workflow_ids=workflow_ids,
        closed_at=[d.close_time.timestamp() if d.close_time else 0.0 for d in descriptions],
        histories=[h.events for h in histories],
        calls={op: calls[op] - calls_before[op] for op in OPERATIONS},
        cpu=cpu,
        started=started,
    )


async def wait_until_final(
    double: Any, workflow_ids: list[str], channel_ids: list[str]
) -> dict[str, Any]:
    """Until every message has its final form. The double's whole state is a heavy
    answer, so it is asked for sparingly (the times measured are the double's own
    records, not when this poll saw them)."""
    deadline = time.monotonic() + SCENARIO_TIMEOUT
    while True:
        state = await double.control.state(requests=False)
        messages = progress_messages(state, workflow_ids, channel_ids)
        final = [m for m in messages.values() if shown_step(m["versions"][-1]) == FINAL]
        steering = [m["id"] for m in final if control_buttons(m)]
        if len(final) == len(workflow_ids) and not steering:
            return await double.control.state()
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"{len(final)} of {len(workflow_ids)} messages final; "
                f"{len(steering)} of those still have buttons that steer a deployment"
            )
        # Asking another process's state: a poll with a deadline, not a synchronisation.
        await asyncio.sleep(1.0)


def control_buttons(message: dict[str, Any]) -> list[str]:
    """The custom ids of a message's buttons that steer a deployment: a failed one's final
    form keeps its "Show log" button."""
    ids = [item["custom_id"] for row in message["components"] for item in row["components"]]
    return [custom_id for custom_id in ids if not custom_id.startswith("shipcord:log:")]


def progress_messages(
    state: dict[str, Any], workflow_ids: list[str], channel_ids: list[str]
) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    wanted = set(workflow_ids)
    for channel_id in channel_ids:
        for message in state["channels"][str(channel_id)]["messages"]:
            if message["ephemeral"] or message["message_reference"]:
                continue
            # The summary line names its workflow id in code spans; other messages (a
            # host's or an incident's notice) name none of these.
            spans = message["content"].split("`")[1::2]
            workflow_id = next((span for span in spans if span in wanted), None)
            if workflow_id is not None:
                found[workflow_id] = message
    return found


def summarise(
    *,
    count: int,
    channels: int,
    state: dict[str, Any],
    dispatched: dict[str, float],
    workflow_ids: list[str],
    closed_at: list[float],
    histories: list[Any],
    calls: dict[str, float],
    cpu: float,
    started: float,
) -> BoardResult:
    interactions = {i["id"]: i for i in state["interactions"]}
    answers = [answered_at(interactions[i]) or float("inf") for i in dispatched]
    answer_delays = [a - sent for a, sent in zip(answers, dispatched.values(), strict=True)]
    channel_ids = [c for c, data in state["channels"].items() if data["name"].startswith("dep")]
    messages = progress_messages(state, workflow_ids, channel_ids)
    final_delays, fresh_delays, last_final, non_final = [], [], started, 0
    for workflow_id, closed, events in zip(workflow_ids, closed_at, histories, strict=True):
        versions = messages[workflow_id]["versions"] if workflow_id in messages else []
        finals = [at(v["at"]) for v in versions if shown_step(v) == FINAL]
        if not finals or control_buttons(messages[workflow_id]):
            non_final += 1
            continue
        first_final = finals[0]
        final_delays.append(max(0.0, first_final - closed))
        last_final = max(last_final, first_final)
        fresh_delays += freshness(step_changes(events), versions)
    requests = state["requests"]
    callbacks = [r for r in requests if r["method"] == "POST" and r["path"].endswith("/callback")]
    answered = len(callbacks)
    followups = sum(
        1 for r in requests if r["method"] == "POST" and r["path"].startswith("/webhooks/")
    )
    webhook_edits = sum(
        1 for r in requests if r["method"] == "PATCH" and r["path"].startswith("/webhooks/")
    )
    posts = sum(
        1 for r in requests if r["method"] == "POST" and r["path"].endswith("/messages")
        and r["path"].startswith("/channels/")
    )  # fmt: skip
    channel_edits = sum(
        1 for r in requests if r["method"] == "PATCH" and r["path"].startswith("/channels/")
    )
    edits = webhook_edits + channel_edits
    retried = sum(
        1
        for r in requests
        if r["method"] in ("POST", "PATCH")
        and (r["status"] == 429 or r["status"] >= 500)
        and r["path"].startswith(("/channels/", "/webhooks/", "/interactions/"))
    )
    return BoardResult(
        deployments=count,
        channels=channels,
        answer_s=Spread.of(answer_delays),
        acknowledged_privately=sum(1 for i in dispatched if interactions[i]["callback_type"] == 5),
        too_late=sum(1 for r in callbacks if r["status"] == 404),
        final_s=Spread.of(final_delays),
        fresh_s=Spread.of(fresh_delays),
        all_final_s=round(last_final - started, 2),
        writes_per_deployment=round((answered + followups + edits + posts) / count, 2),
        answers=answered,
        interaction_edits=webhook_edits,
        channel_posts=posts,
        channel_edits=channel_edits,
        rate_limited=int(state["rate_limited_count"]),
        retried_writes=retried,
        non_final=non_final,
        status_queries_per_edit=round(calls["QueryWorkflow"] / max(1, edits), 2),
        describes_per_deployment=round(calls["DescribeWorkflowExecution"] / count, 2),
        history_polls_per_deployment=round(calls["GetWorkflowExecutionHistory"] / count, 2),
        cpu_s_per_deployment=round(cpu / count, 3),
    )


def report(results: list[BoardResult]) -> str:
    head = (
        f"  {'scenario':>9} {'answer p50/p95/max':>20} {'final p50/p95/max':>20}"
        f" {'fresh p50/p95':>14} {'all final':>9} {'writes':>6} {'429':>4}"
        f" {'q/edit':>6} {'CPU s':>6} {'private':>7} {'retried':>7} {'not final':>9}"
    )
    lines = ["board (N deployments at once x C channels; seconds)", head]
    for r in results:
        lines.append(
            f"  {f'{r.deployments}x{r.channels}':>9}"
            f" {_spread(r.answer_s):>20} {_spread(r.final_s):>20}"
            f" {f'{r.fresh_s.p50:.2f}/{r.fresh_s.p95:.2f}':>14} {r.all_final_s:>9.1f}"
            f" {r.writes_per_deployment:>6.2f} {r.rate_limited:>4}"
            f" {r.status_queries_per_edit:>6.2f} {r.cpu_s_per_deployment:>6.3f}"
            f" {r.acknowledged_privately:>7} {r.retried_writes:>7} {r.non_final:>9}"
        )
    lines.append(
        "  answer: /deploy to the answer seen; final: workflow end to final message; fresh:"
        " step change to the edit showing it; writes per deployment; 429s; status queries"
        " per edit; CPU s of shipcord per deployment; answers after a private thinking;"
        " writes Discord refused for a while and shipcord tried again; messages not final"
    )
    return "\n".join(lines)


def _spread(spread: Spread) -> str:
    return f"{spread.p50:.2f}/{spread.p95:.2f}/{spread.max:.2f}"


def parse_scenarios(text: str) -> list[tuple[int, int]]:
    pairs = []
    for item in text.split(","):
        count, _, channels = item.partition("x")
        pairs.append((int(count), int(channels or 1)))
    return pairs


async def measure(
    temporal: Temporal, work: Path, scenarios: str, tree: Path | None = None
) -> list[BoardResult]:
    results = []
    for count, channels in parse_scenarios(scenarios):
        scenario_dir = work / f"board-{count}x{channels}"
        scenario_dir.mkdir()
        results.append(
            await run_scenario(temporal, scenario_dir, count=count, channels=channels, tree=tree)
        )
    return results


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="bench-board-") as tmp:
        async with temporal_server(Path(tmp)) as temporal:
            results = await measure(temporal, Path(tmp), args.scenarios, args.shipcord_tree)
    print(report(results), flush=True)
    return [asdict(result) for result in results]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scenarios", default="30x1,100x1,30x10,100x10")
    parser.add_argument(
        "--shipcord-tree",
        type=Path,
        help="run the shipcord of this checkout instead (e.g. an earlier commit's worktree)",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
