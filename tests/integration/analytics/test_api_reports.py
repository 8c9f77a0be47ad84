"""The analytics API over HTTP: reports as JSON/CSV/PNG, imports, classifier, stage history, roles."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from hub.keys import RUNTIME
from hub.runtime import Runtime
from tests.conftest import make_agent
from tests.integration.analytics.history import CSV

Client = TestClient[web.Request, web.Application]


def rt(client: Client) -> Runtime:
    assert client.app is not None
    return client.app[RUNTIME]


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _admin(client: Client) -> str:
    return (await make_agent(rt(client), "boss@hotel.test", "admin"))[1]


async def test_import_then_reports_as_json_csv_and_png(client: Client) -> None:
    token = await _admin(client)
    response = await client.post("/api/v1/stays/import?name=history.csv", data=CSV.encode(), headers=auth(token))
    assert response.status == 200 and (await response.json())["inserted"] == 11
    again = await (await client.post("/api/v1/stays/import", data=CSV.encode(), headers=auth(token))).json()
    assert (again["inserted"], again["duplicates"]) == (0, 11)
    body: Any = await (await client.get("/api/v1/reports/retention", headers=auth(token))).json()
    assert [(r["period"], r["rate"]) for r in body["rows"]] == [
        ("2025-01", None), ("2025-02", 0.3333), ("2025-03", 1.0), ("2025-04", 0.0)]
    csv_response = await client.get("/api/v1/reports/cohorts?format=csv", headers=auth(token))
    text = await csv_response.text()
    assert csv_response.content_type == "text/csv"
    assert text.splitlines()[:2] == ["cohort,size,active,rates", "2025-01,3,3;1;2;1,1.0;0.3333;0.6667;0.3333"]
    png = await client.get("/api/v1/reports/retention.png?period=quarter", headers=auth(token))
    assert png.content_type == "image/png" and (await png.read()).startswith(b"\x89PNG")


async def test_bad_rows_are_reported_with_file_and_line(client: Client) -> None:
    token = await _admin(client)
    data = ("external_id,date,amount,email\nok1,2025-01-01,10,a@x.test\nbad,2025-02-30,10,b@x.test\n"
            "neg,2025-01-01,1.234,c@x.test\n")
    response = await client.post("/api/v1/stays/import?name=pms.csv&strict=1", data=data.encode(), headers=auth(token))
    body = await response.json()
    assert response.status == 400 and body["inserted"] == 0 and body["file"] == "pms.csv"
    assert [(e["line"], e["message"]) for e in body["errors"]] == [
        (3, "date '2025-02-30' is not YYYY-MM-DD"), (4, "amount '1.234' needs at most two decimals")]


async def test_classifier_stage_history_and_roles(client: Client) -> None:
    token = await _admin(client)
    _, agent = await make_agent(rt(client), "desk@hotel.test", "agent")
    await client.post("/api/v1/stays/import", data=CSV.encode(), headers=auth(token))
    dry = await (await client.post("/api/v1/analytics/classify", json={"dry_run": True}, headers=auth(token))).json()
    assert dry["dry_run"] and dry["changed"] == 5
    forbidden = await client.post("/api/v1/analytics/classify", json={"dry_run": False}, headers=auth(agent))
    assert forbidden.status == 403
    done = await (await client.post("/api/v1/analytics/classify", json={"dry_run": False}, headers=auth(token))).json()
    assert done["changed"] == 5 and not done["dry_run"]
    cid = done["sample"][0]["customer_id"]
    moved = await client.post(f"/api/v1/customers/{cid}/stage", json={"stage": "advocate"}, headers=auth(agent))
    assert moved.status == 200 and (await moved.json())["changed"] is True
    history = await (await client.get(f"/api/v1/customers/{cid}/stages", headers=auth(agent))).json()
    assert [(h["to_stage"], h["cause"]) for h in history["items"]][-2:] == [
        (done["sample"][0]["to"], "classifier"), ("advocate", "agent")]
    bad = await client.post(f"/api/v1/customers/{cid}/stage", json={"stage": "gold"}, headers=auth(agent))
    assert bad.status == 400
    rules = await client.put("/api/v1/analytics/stage-rules", headers=auth(token), json={
        "rules": [{"stage": "key", "condition": {"field": "rfm.bogus", "op": "gte", "value": 1}}]})
    assert rules.status == 400 and (await rules.json())["error"]["field"] == "$[0].condition.field"
    hints = await (await client.get(f"/api/v1/customers/{cid}/suggestions", headers=auth(agent))).json()
    assert isinstance(hints["items"], list)
    report = await client.get("/api/v1/reports/retention", headers=auth(agent))
    assert report.status == 403
