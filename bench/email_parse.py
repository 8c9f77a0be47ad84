"""Throughput of hub's email parse() against bare stdlib parsing of the same bytes, same run.

Corpus: CPython's own email test messages (Lib/test/test_email/data/msg_*.txt), repeated to at
least 5,000 messages. Floor: `email.message_from_bytes(b, policy=default)` + `get_body()`.
Run: `python bench/email_parse.py [--count N]`.
"""

from __future__ import annotations

import argparse
import email
import time
from collections.abc import Callable
from email import policy
from email.message import EmailMessage
from pathlib import Path

from hub.channels.email.parse import EmailParseError, parse


def _stdlib_corpus() -> list[bytes]:
    """CPython's email test messages, or [] when the test package is not installed."""
    try:
        import test
    except ImportError:
        return []
    data = Path(test.__file__).parent / "test_email" / "data"
    return [path.read_bytes() for path in sorted(data.glob("msg_*.txt"))]


def _generated_corpus() -> list[bytes]:
    """Fallback messages built here: plain, multipart with HTML and an attachment, Italian reply."""
    messages = []
    for i in range(50):
        msg = EmailMessage()
        msg["From"] = f"Cliente {i} <cliente{i}@example.com>"
        msg["To"] = "support@hotel.it"
        msg["Subject"] = f"Prenotazione n°{i}"
        msg["Message-ID"] = f"<m{i}@example.com>"
        msg.set_content(
            f"Buongiorno,\nvorrei prenotare.\n\nIl giorno lun, Hotel ha scritto:\n> risposta {i}\n"
        )
        if i % 2:
            msg.add_alternative(f"<p>Buongiorno, <b>vorrei</b> prenotare {i}.</p>", subtype="html")
        if i % 5 == 0:
            msg.add_attachment(b"%PDF-1.4" * 100, maintype="application", subtype="pdf", filename="doc.pdf")
        messages.append(msg.as_bytes())
    return messages


def _floor(raw: bytes) -> object:
    msg = email.message_from_bytes(raw, policy=policy.default)
    body = msg.get_body() if isinstance(msg, EmailMessage) else None
    return body.get_content() if body is not None else None


def _ours(raw: bytes) -> object:
    try:
        return parse(raw, mailbox="support@hotel.it")
    except EmailParseError as exc:  # counted: parse refused it (the caller quarantines)
        return exc


def _rate(fn: Callable[[bytes], object], messages: list[bytes]) -> float:
    """Messages per second of `fn` over `messages`."""
    start = time.perf_counter()
    for raw in messages:
        fn(raw)
    return len(messages) / (time.perf_counter() - start)


def _tolerant_floor(raw: bytes) -> object:
    """The floor, skipping messages on which bare get_content() itself fails (counted below)."""
    try:
        return _floor(raw)
    except (LookupError, ValueError, KeyError, AttributeError) as exc:
        return exc


def main() -> None:
    """Print messages/s of parse() and of the stdlib floor, and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=5000)
    args = parser.parse_args()
    base = _stdlib_corpus()
    source = "CPython test_email data"
    if not base:
        print("stdlib `test` package missing: using generated messages instead")
        base, source = _generated_corpus(), "generated"
    messages = (base * (args.count // len(base) + 1))[: max(args.count, len(base))]
    refused = sum(isinstance(_ours(raw), EmailParseError) for raw in base)
    _rate(_ours, messages[:200])  # warm caches and regex compilation
    floor = _rate(_tolerant_floor, messages)
    ours = _rate(_ours, messages)
    print(f"corpus: {len(base)} {source} messages, repeated to {len(messages)}; parse() refused {refused}")
    print(f"stdlib message_from_bytes+get_body: {floor:,.0f} msg/s")
    print(f"hub parse():                        {ours:,.0f} msg/s")
    print(f"ratio parse()/floor: {ours / floor:.2f}")


if __name__ == "__main__":
    main()
