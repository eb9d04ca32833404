"""The benchmarks' arithmetic: what counts as fresh, as an answer, as a change."""

from __future__ import annotations

from bench.board import FINAL, Spread, answered_at, freshness, shown_step
from bench.compare import compare, flatten


def version(at: float, headline: str = "", color: int = 0x5865F2) -> dict[str, object]:
    stamp = f"2025-01-01T00:00:{at:06.3f}+00:00"
    embeds = [{"description": f"{headline}\n`bar`", "color": color}] if headline else []
    return {"at": stamp, "embeds": embeds}


def test_a_step_is_fresh_once_an_edit_shows_it_or_a_later_one() -> None:
    versions = [
        version(1.0, "**Starting** — 0%"),
        version(2.5, "**Creating bot record** — 25%"),
        version(4.0, "**Deployed** — 100%", color=0x57F287),
    ]
    assert [shown_step(v) for v in versions] == [-1, 1, FINAL]
    base = 1735689600.0  # 2025-01-01T00:00:00Z
    changes = [(0, base + 2.0), (1, base + 2.1), (3, base + 3.0), (FINAL, base + 3.9)]
    delays = [round(d, 3) for d in freshness(changes, versions)]
    # Validating was never shown by itself: the edit showing Creating covers it.
    assert delays == [0.5, 0.4, 1.0, 0.1]


def test_the_answer_is_the_first_thing_the_person_sees() -> None:
    public = {"responses": [{"kind": "callback", "type": 4, "at": "2025-01-01T00:00:01+00:00"}]}
    private = {
        "responses": [
            {"kind": "callback", "type": 5, "at": "2025-01-01T00:00:01+00:00"},
            {"kind": "followup", "type": None, "at": "2025-01-01T00:00:02+00:00"},
        ]
    }
    assert answered_at(public) == 1735689601.0
    assert answered_at(private) == 1735689602.0
    assert Spread.of([1.0, 2.0, 3.0, 4.0]) == Spread(p50=2.5, p95=4.0, max=4.0)


def test_a_later_run_is_compared_key_by_key() -> None:
    earlier = {"when": "then", "engine": {"throughput_ratio": 0.5}, "board": [
        {"deployments": 30, "channels": 1, "answer_s": {"p95": 2.0}}]}  # fmt: skip
    now = {"engine": {"throughput_ratio": 0.8}, "board": [
        {"deployments": 30, "channels": 1, "answer_s": {"p95": 0.4}}]}  # fmt: skip
    assert dict(flatten(now)) == {
        "engine.throughput_ratio": 0.8,
        "board[30x1].deployments": 30,
        "board[30x1].channels": 1,
        "board[30x1].answer_s.p95": 0.4,
    }
    text = compare(earlier, now, label="old.json")
    assert "engine.throughput_ratio: 0.8 (was 0.5, +60%, better)" in text
    assert "board[30x1].answer_s.p95: 0.4 (was 2, -80%, better)" in text
    assert "(2 more within 5 %)" in text
