"""Prints how many tests ran, passed, failed and were skipped, and why each skip, from a
JUnit XML report of pytest's."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ElementTree
from collections import Counter


def main(report: str) -> None:
    cases = ElementTree.parse(report).getroot().iter("testcase")
    outcomes: Counter[str] = Counter()
    skip_reasons: Counter[str] = Counter()
    for case in cases:
        skipped = case.find("skipped")
        if skipped is not None:
            outcomes["skipped"] += 1
            skip_reasons[skipped.get("message", "no reason given")] += 1
        elif case.find("failure") is not None or case.find("error") is not None:
            outcomes["failed"] += 1
        else:
            outcomes["passed"] += 1
    ran = outcomes["passed"] + outcomes["failed"]
    print(f"tests ran: {ran} ({outcomes['skipped']} skipped)")
    for reason, count in skip_reasons.most_common():
        print(f"  skipped {count}: {reason}")


if __name__ == "__main__":
    main(sys.argv[1])
