"""visible_text(): the shared corpus figure, language cases, and linear time on huge inputs."""

from __future__ import annotations

import pytest

from hub.channels.email.quotes import visible_text
from tests.unit.email._email_corpus import CORPUS, score


def test_corpus_agreement_is_at_least_ninety_percent() -> None:
    results, failures = score(visible_text)
    passed = sum(p for p, _ in results.values())
    total = sum(t for _, t in results.values())
    figures = ", ".join(f"{name} {p}/{t}" for name, (p, t) in results.items())
    print(f"\nvisible_text corpus agreement: {passed}/{total} = {passed / total:.1%} ({figures})")
    print("failing:", failures)
    assert passed / total >= 0.90


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("Grazie!\n\nIl giorno lun 3 mar 2025 alle ore 10:00 Hotel <a@b.it> ha scritto:\n> testo", "Grazie!"),
        ("Grazie!\n\nIl 03/03/2025 10:00, Hotel ha scritto:\n> testo", "Grazie!"),
        (
            "Ok.\n\nDa: Hotel <a@b.it>\nInviato: lunedì 3 marzo 2025 10:00\nA: Mario\nOggetto: x\n\nvecchio",
            "Ok.",
        ),
        ("Ok.\n\n-----Messaggio originale-----\nvecchio testo\n", "Ok."),
        ("Ok.\n\nInviato da iPhone", "Ok."),
        ("Ok.\n\nSent from my iPhone", "Ok."),
        ("Ok.\n-- \nMario Rossi\nVia Roma 1", "Ok."),
        ("Ok.\n\nOn Mon, Mar 3, 2025 at 10:00 AM Hotel <a@b.it> wrote:\n> old", "Ok."),
        ("Ja.\n\nAm 03.03.2025 um 10:00 schrieb Hotel <a@b.it>:\n> alt", "Ja."),
        ("Oui.\n\nLe lun. 3 mars 2025 à 10:00, Hotel <a@b.it> a écrit :\n> vieux", "Oui."),
        ("Sí.\n\nEl lun, 3 mar 2025 a las 10:00, Hotel (<a@b.it>) escribió:\n> viejo", "Sí."),
        ("Ja.\n\nOp ma 3 mrt 2025 om 10:00 schreef Hotel <a@b.it>:\n> oud", "Ja."),
        ("Fine.\n\n> quoted\n> more", "Fine."),
        ("", ""),
    ],
)
def test_reply_headers_quotes_and_signatures_are_removed(body: str, expected: str) -> None:
    assert visible_text(body) == expected


def _github_email(name: str) -> str:
    return (CORPUS / "github_email_reply_parser" / "emails" / name).read_text("utf-8")


def test_a_huge_quoted_mail_keeps_only_the_reply() -> None:
    # 767 KB of odd '>' runs and fragments; the corpus only asks that it finishes (its time is
    # measured in bench/quotes.py, never asserted in a test) and the reply's opening survives.
    text = visible_text(_github_email("email_long_quote.txt"))
    assert text.startswith("Hi folks\n\nWhat is the best way to clear a Riak bucket")


def test_the_pathological_on_wrote_header_is_cut_at_the_reply() -> None:
    text = visible_text(_github_email("pathological.txt"))
    assert text == ("I think you're onto something. I will try to fix the problem as soon as I\n"
                    "get back to a computer.")


def test_fifty_thousand_trailing_quote_lines_are_all_cut() -> None:
    assert visible_text("reply\n" + "> quoted line\n" * 50_000) == "reply"


def test_a_quote_answered_below_is_kept_and_the_on_wrote_tail_cut() -> None:
    # Text after a quote is an interleaved answer (kept with its quote); the header tail is not.
    body = "reply\n" + "> quoted line\n" * 50_000 + "text\n" * 3 + "On Mon, X wrote:\n" * 2000
    text = visible_text(body)
    assert text.startswith("reply\n> quoted line") and text.endswith("> quoted line\ntext\ntext\ntext")
    assert text.count("quoted line") == 50_000 and "wrote" not in text
