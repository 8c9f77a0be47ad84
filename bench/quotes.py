"""visible_text() on huge and pathological mail, beside a floor that only splits and scans the lines.

The corpus asks that github's `email_long_quote.txt` (767 KB) and `pathological.txt` finish within
a second; tests never assert time, so it is measured here. For linearity it also times a synthetic
quote of n and 4n lines: the per-line cost should stay flat (ratio of the two near 1).

    python bench/quotes.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hub.channels.email.quotes import visible_text

CORPUS = Path(os.environ.get("HUB_CORPUS", Path(__file__).resolve().parents[2] / "shared" / "corpus"))
QUOTE = re.compile(r"^[ \t]*>")


def floor(body: str) -> int:
    """What any line classifier must at least do: split the lines and test each once."""
    return sum(1 for line in body.splitlines() if QUOTE.match(line))


def best(fn: Callable[[str], object], body: str, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn(body)
        times.append(time.perf_counter() - start)
    return min(times)


def synthetic(lines: int) -> str:
    return "reply\n" + "> quoted line\n" * lines + "text\n" * 3 + "On Mon, X wrote:\n" * (lines // 25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    emails = CORPUS / "github_email_reply_parser" / "emails"
    print(f"{'input':28} {'bytes':>9} {'ours s':>8} {'floor s':>8} {'floor/ours':>10}")
    for name in ("email_long_quote.txt", "pathological.txt"):
        body = (emails / name).read_text("utf-8")
        ours, bare = best(visible_text, body, args.repeat), best(floor, body, args.repeat)
        verdict = "ok" if ours < 1.0 else "OVER the corpus's 1 s guard"
        print(f"{name:28} {len(body):>9} {ours:8.3f} {bare:8.4f} {bare / ours:10.3f}  {verdict}")
    small, large = synthetic(50_000), synthetic(200_000)
    t_small, t_large = best(visible_text, small, args.repeat), best(visible_text, large, args.repeat)
    per_line = (t_large / 200_000) / (t_small / 50_000)
    print(f"synthetic 50k lines {t_small:.3f} s, 200k lines {t_large:.3f} s: per-line cost ratio {per_line:.2f} "
          "(1.0 = linear)")


if __name__ == "__main__":
    main()
