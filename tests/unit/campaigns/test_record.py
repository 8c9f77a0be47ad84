"""What a send result does to a campaign row and its message, given what the provider already reported."""

from __future__ import annotations

import pytest

from hub.campaigns.record import Outcome, settle
from hub.campaigns.templates import TemplateSource, needs
from hub.core.envelopes import DeliveryState, SendResult

OK = SendResult(ok=True, provider_id="abc@hub.test", detail="250 accepted")
LATER = SendResult(ok=False, detail="451 try later", code="451")
NEVER = SendResult(ok=False, detail="550 no such user", code="550", permanent=True)


@pytest.mark.parametrize(("result", "current", "expected"), [
    # Nothing reported yet: the send result decides.
    (OK, "sending", Outcome("sent", DeliveryState.SENT)),
    (NEVER, "sending", Outcome("failed", DeliveryState.FAILED, own_failure=True)),
    (LATER, "sending", Outcome("queued")),
    (OK, None, Outcome("sent", DeliveryState.SENT)),
    # A receipt or a bounce applied before the worker recorded: never moved back to `sent`.
    (OK, "delivered", Outcome("sent")),
    (OK, "read", Outcome("sent")),
    (OK, "bounced", Outcome("bounced")),
    (OK, "undelivered", Outcome("failed")),
    (OK, "failed", Outcome("failed")),
    # A receipt beats this attempt's failure, and a message the provider reported on is not re-sent.
    (NEVER, "delivered", Outcome("sent")),
    (LATER, "delivered", Outcome("sent")),
    (LATER, "bounced", Outcome("bounced")),
    (NEVER, "bounced", Outcome("bounced")),
])
def test_a_send_result_only_moves_the_message_forward(result: SendResult, current: str | None,
                                                      expected: Outcome) -> None:
    assert settle(result, current, attempts=1, max_attempts=4) == expected


def test_the_last_attempt_fails_for_good() -> None:
    assert settle(LATER, "sending", attempts=4, max_attempts=4) == Outcome("failed", DeliveryState.FAILED, True)
    assert settle(LATER, "sending", attempts=3, max_attempts=4) == Outcome("queued")


def test_a_template_names_the_variables_it_reads() -> None:
    source = TemplateSource("t", "email", "en", "Hi {{ customer.name }}", subject="{{ campaign.name }}",
                            body_html="{% if case %}{{ case.state }}{% endif %}")
    assert needs(source) == {"customer", "campaign", "case"}
    assert "case" not in needs(TemplateSource("t", "sms", "en", "{% set case = 1 %}{{ case }}"))
