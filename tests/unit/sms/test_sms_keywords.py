import pytest

from hub.channels.sms.keywords import Keyword, classify


@pytest.mark.parametrize(
    "body",
    [
        "stop",
        " Stop! ",
        "STOP.",
        "StopAll",
        "unsubscribe",
        "cancel",
        "END",
        "quit",
        "BASTA",
        "cancella",
        "Basta!!",
    ],
)
def test_opt_out_words(body: str) -> None:
    assert classify(body, None) is Keyword.OPT_OUT


@pytest.mark.parametrize("body", ["start", "YES", "Unstop", " start\n"])
def test_opt_in_words(body: str) -> None:
    assert classify(body, None) is Keyword.OPT_IN


@pytest.mark.parametrize("body", ["help", "INFO", "aiuto?"])
def test_help_words(body: str) -> None:
    assert classify(body, None) is Keyword.HELP


@pytest.mark.parametrize(
    "body", ["stop please", "please stop", "!stop", "non basta", "", "   ", "stopp", "iscrivi", "helpful"]
)
def test_other_messages_are_not_keywords(body: str) -> None:
    assert classify(body, None) is None


def test_opt_out_type_wins_over_the_body() -> None:
    # Twilio Advanced Opt-Out may match custom keywords the hub does not know
    assert classify("arrêter", "STOP") is Keyword.OPT_OUT
    assert classify("stop", "START") is Keyword.OPT_IN
    assert classify("aiutatemi", "help") is Keyword.HELP


def test_unknown_opt_out_type_falls_back_to_the_body() -> None:
    assert classify("stop", "SOMETHING") is Keyword.OPT_OUT
    assert classify("hello", "") is None
