"""The pure core of routing: decide, action units, workflows, hours, surveys."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime

import pytest
from pydantic import BaseModel

from hub.core.events import Event
from hub.routing.actions import ACTIONS, ActionError, parse_actions
from hub.routing.assignment import least_loaded, next_in_turn
from hub.routing.errors import NotAllowed, TransitionError
from hub.routing.hours import BusinessHours, HoursError
from hub.routing.rules import CompiledRule, Record, RuleError, check_rule, decide
from hub.routing.surveys import parse_sms_answers, sign, verify
from hub.routing.workflows import WORKFLOWS, Scoring
from hub.store.models import Rule

RECLAMO = {"field": "message.body", "op": "contains_any", "value": ["reclamo", "complaint"]}


def rule(name: str, condition: dict[str, object], *, position: int = 0, stop: bool = False, enabled: bool = True,
         event: str = "message.received") -> CompiledRule:
    from hub.routing.rules import compile_rule

    return compile_rule(Rule(id=position, name=name, event=event, condition=condition, position=position,
                             stop_processing=stop, enabled=enabled, actions=[{"type": "tags", "add": [name]}]))


def test_decide_collects_actions_in_order_and_explains() -> None:
    rules = [rule("a", RECLAMO, position=1), rule("b", {"all": []}, position=2), rule("c", {"not": RECLAMO},
                                                                                       position=3)]
    record = Record(explain=True)
    actions = decide(rules, Event("message.received"), {"message.body": "Un RECLAMO formale"}, record)
    assert [a.rule_name for a in actions] == ["a", "b"]
    assert [(v.rule_name, v.hit) for v in record.verdicts] == [("a", True), ("b", True), ("c", False)]
    assert record.verdicts[0].explanation is not None and record.verdicts[0].explanation.result


def test_stop_processing_disabled_and_other_events() -> None:
    rules = [rule("off", {"all": []}, position=1, enabled=False), rule("stop", {"all": []}, position=2, stop=True),
             rule("late", {"all": []}, position=3), rule("call", {"all": []}, position=4, event="call.missed")]
    record = Record(explain=True)
    assert [a.rule_name for a in decide(rules, Event("message.received"), {}, record)] == ["stop"]
    reasons = {v.rule_name: v.reason for v in record.verdicts}
    assert reasons["off"] == "disabled" and "stops processing" in reasons["late"]
    assert "not reached" in reasons["call"] or "listens to" in reasons["call"]


def test_loop_guard() -> None:
    record = Record()
    assert decide([rule("a", {"all": []})], Event("message.received", depth=9), {}, record, max_depth=4) == []
    assert "depth" in record.verdicts[0].reason


def test_rule_validation_names_every_bad_path() -> None:
    with pytest.raises(RuleError) as caught:
        check_rule({"event": "nope", "condition": {"field": "message.nope", "op": "equals", "value": 1},
                    "actions": [{"type": "assign"}, {"type": "explode"}]})
    paths = [path for path, _ in caught.value.errors]
    assert paths == ["$.event", "$.condition.field", "$.actions[0]", "$.actions[1].type"]


@pytest.mark.parametrize("name", sorted(ACTIONS))
def test_every_action_unit_is_complete(name: str) -> None:
    unit = ACTIONS[name]
    assert unit.name == name and unit.description and len(unit.description) < 120
    assert issubclass(unit.params, BaseModel) and unit.params.model_config.get("extra") == "forbid"
    assert inspect.iscoroutinefunction(unit.run)
    with pytest.raises(ActionError) as caught:  # unknown keys are refused with their path
        parse_actions([{"type": name, "surprise": 1}])
    assert any(path.startswith("$.actions[0]") for path, _ in caught.value.errors)


@pytest.mark.parametrize(("data", "path"), [
    ({"type": "assign", "team": "Reception", "agent": "a@b.c"}, "$.actions[0]"),
    ({"type": "assign", "team": "Reception", "strategy": "random"}, "$.actions[0].strategy"),
    ({"type": "set_status", "status": "gone"}, "$.actions[0].status"),
    ({"type": "set_priority", "priority": "whenever"}, "$.actions[0].priority"),
    ({"type": "tags"}, "$.actions[0]"),
    ({"type": "open_complaint", "severity": "meh"}, "$.actions[0].severity"),
    ({"type": "create_interventions", "items": []}, "$.actions[0].items"),
    ({"type": "create_interventions", "items": [{"team": "X", "description": "d", "due_in": "soon"}]},
     "$.actions[0].items.0"),
    ({"type": "move_case"}, "$.actions[0].to"),
    ({"type": "auto_reply"}, "$.actions[0].template"),
    ({"type": "notify_email", "to": [], "subject": "x"}, "$.actions[0].to"),
    ({"type": "set_stage", "stage": "vip"}, "$.actions[0].stage"),
    ({"type": "webhook", "url": "ftp://example.com/x"}, "$.actions[0].url"),
    ({"type": "webhook", "url": "javascript:alert(1)"}, "$.actions[0].url"),
    ({"type": "send_survey", "channel": "fax"}, "$.actions[0].channel"),
])
def test_action_params_are_validated(data: dict[str, object], path: str) -> None:
    with pytest.raises(ActionError) as caught:
        parse_actions([data])
    assert caught.value.errors[0][0] == path


def test_valid_actions_round_trip() -> None:
    data = [{"type": "webhook", "url": "https://example.com/hook"}, {"type": "assign", "team": "Reception"}]
    assert [spec.dump()["type"] for spec in parse_actions(data)] == ["webhook", "assign"]


def test_round_robin_and_least_loaded_are_pure() -> None:
    assert next_in_turn([3, 1, 2], None) == 1 and next_in_turn([1, 2, 3], 2) == 3 and next_in_turn([1, 2, 3], 3) == 1
    assert next_in_turn([1, 5], 3) == 5 and next_in_turn([], 1) is None
    assert least_loaded({4: 2, 2: 1, 3: 1}) == 2 and least_loaded({}) is None


def test_hotel_stay_transitions() -> None:
    flow = WORKFLOWS["hotel_stay"]
    assert flow.allowed("arrived", "agent") == ["services_ok", "complaint"]
    assert set(flow.allowed("services_ok")) == {"complaint", "departure_survey"}
    flow.check("services_ok", "complaint", "agent")
    with pytest.raises(TransitionError) as caught:
        flow.check("arrived", "closed_success", "admin")
    assert caught.value.allowed == ["services_ok", "complaint"]
    with pytest.raises(NotAllowed):
        flow.check("complaint", "services_ok", "agent")  # only admins undo a complaint by hand
    flow.check("complaint", "services_ok")  # the workflow trigger may


def test_scoring() -> None:
    scoring = Scoring(("q",), 4.0, True, "closed_success", "closed_with_complaints")
    assert scoring.closing_state(4.0, False) == "closed_success"
    assert scoring.closing_state(3.9, False) == "closed_with_complaints"
    assert scoring.closing_state(5.0, True) == "closed_with_complaints"
    lenient = Scoring(("q",), 3.0, False, "closed_success", "closed_with_complaints")
    assert lenient.closing_state(5.0, True) == "closed_success"


def test_business_hours() -> None:
    hours = BusinessHours.parse("mon-fri 09:00-18:00", "Europe/Rome")
    friday_5pm = datetime(2026, 11, 6, 16, 0, tzinfo=UTC)  # 17:00 in Rome
    assert hours.is_open(friday_5pm)
    assert not hours.is_open(datetime(2026, 11, 7, 10, 0, tzinfo=UTC))  # Saturday
    # 2 business hours from Friday 17:00: one hour on Friday, one on Monday from 09:00.
    assert hours.add(friday_5pm, 120) == datetime(2026, 11, 9, 9, 0, tzinfo=UTC)
    assert BusinessHours.parse("always").add(friday_5pm, 60) == datetime(2026, 11, 6, 17, 0, tzinfo=UTC)
    with pytest.raises(HoursError):
        BusinessHours.parse("weekdays 9-5")


@pytest.mark.parametrize(("text", "count", "expected"), [
    ("5", 1, [5]), ("4 5 3", 3, [4, 5, 3]), ("453", 3, [4, 5, 3]), ("voto: 4, 5, 3 grazie", 3, [4, 5, 3]),
    ("4 5", 3, None), ("6 5 4", 3, None), ("stanza 312", 1, None), ("ciao", 1, None), ("10", 1, None),
])
def test_sms_answers(text: str, count: int, expected: list[int] | None) -> None:
    assert parse_sms_answers(text, count) == expected


def test_survey_tokens() -> None:
    token = sign(42, "secret")
    assert verify(token, "secret") == 42
    assert verify(token, "other") is None and verify("42.forged", "secret") is None and verify("x", "s") is None
