import pytest

from hub.channels.sms.segments import Encoding, SmsBodyError, check_body, encoding, segment_count


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("", 0),
        ("a", 1),
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("€" * 80, 1),  # extension characters cost two septets: 160
        ("€" * 81, 2),
        ("è" * 160, 1),  # è, é, ù, ì, ò, à are in the GSM-7 basic table
        ("à" * 70 + "ç", 2),  # ç is not GSM-7 (only Ç is): UCS-2, 71 units
        ("ç" * 70, 1),
        ("ç" * 71, 2),
        ("ç" * 134, 2),
        ("ç" * 135, 3),
        ("😀" * 35, 1),  # each emoji is a surrogate pair: 70 units
        ("😀" * 36, 2),
        ("Ciao 😀", 1),
    ],
)
def test_segment_count(body: str, expected: int) -> None:
    assert segment_count(body) == expected


def test_escape_sequence_is_never_split_across_parts() -> None:
    # 152 septets then a 2-septet "€": it cannot share part one's last septet
    assert segment_count("a" * 152 + "€" + "a" * 152) == 3
    assert segment_count("a" * 151 + "€" + "a" * 153) == 2


def test_surrogate_pair_is_never_split_across_parts() -> None:
    assert segment_count("ç" * 66 + "😀" + "ç" * 66) == 3
    assert segment_count("ç" * 65 + "😀" + "ç" * 67) == 2


def test_encoding() -> None:
    assert encoding("Hello [world] {€}") is Encoding.GSM7
    assert encoding("Привет") is Encoding.UCS2
    assert encoding("\x1b") is Encoding.UCS2  # the bare escape is not a character of its own


def test_check_body_refuses_empty_and_too_long() -> None:
    with pytest.raises(SmsBodyError, match="empty"):
        check_body("  ")
    with pytest.raises(SmsBodyError, match="1601 characters long; the limit is 1600"):
        check_body("a" * 1601)
    assert check_body("a" * 1600) == 11
