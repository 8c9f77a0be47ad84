"""Load the shared visible-text corpus and score a `visible_text`-like function on it."""

from __future__ import annotations

import email
import json
import os
import re
from collections.abc import Callable, Iterator
from email import policy
from email.message import Message
from pathlib import Path

# ../shared beside the checkout (as in CI); HUB_CORPUS overrides it for a checkout elsewhere.
CORPUS = Path(os.environ.get("HUB_CORPUS") or Path(__file__).resolve().parents[4] / "shared" / "corpus")
_WS = re.compile(r"\s+")


def normalise(text: str) -> str:
    """The corpus comparison rule: strip both sides and collapse whitespace runs."""
    return _WS.sub(" ", text.strip())


def _first_text_plain(raw: bytes) -> str:
    """Talon's input: the first text/plain part, transfer-decoded, then decoded as UTF-8."""
    msg: Message = email.message_from_bytes(raw, policy=policy.compat32)
    for part in msg.walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload.decode("utf-8")
    raise AssertionError("no text/plain part")


def discourse_cases() -> Iterator[tuple[str, str, str]]:
    """(name, input body, expected visible text) for the 64 discourse trimmer cases."""
    root = CORPUS / "discourse_email_reply_trimmer"
    for path in sorted((root / "emails").glob("*.txt")):
        body = path.read_bytes().decode("utf-8").strip()
        expected = (root / "trimmed" / path.name).read_bytes().decode("utf-8")
        yield path.name, body, expected


def github_cases() -> Iterator[tuple[str, str, str]]:
    """(name, raw body, expected) for the 8 github cases with an exact visible_text."""
    root = CORPUS / "github_email_reply_parser"
    expected = json.loads((root / "expected.json").read_text("utf-8"))["emails"]
    for name, facts in sorted(expected.items()):
        if "visible_text" in facts:
            body = (root / "emails" / name).read_bytes().decode("utf-8")
            yield name, body, facts["visible_text"]


def talon_cases() -> Iterator[tuple[str, str, str]]:
    """(name, first text/plain part, expected) for the 12 talon standard replies."""
    root = CORPUS / "mailgun_talon"
    expected = json.loads((root / "expected.json").read_text("utf-8"))["standard_replies"]
    for name, facts in sorted(expected.items()):
        yield name, _first_text_plain((root / name).read_bytes()), facts["expected_reply_text"]


CORPORA: dict[str, Callable[[], Iterator[tuple[str, str, str]]]] = {
    "discourse": discourse_cases,
    "github": github_cases,
    "talon": talon_cases,
}


def score(fn: Callable[[str], str]) -> tuple[dict[str, tuple[int, int]], list[str]]:
    """Per corpus (passed, total) and the names of the failing cases."""
    results: dict[str, tuple[int, int]] = {}
    failures: list[str] = []
    for corpus, cases in CORPORA.items():
        passed = total = 0
        for name, body, expected in cases():
            total += 1
            if normalise(fn(body)) == normalise(expected):
                passed += 1
            else:
                failures.append(f"{corpus}/{name}")
        results[corpus] = (passed, total)
    return results, failures
