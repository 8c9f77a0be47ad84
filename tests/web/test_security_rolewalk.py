"""Role walk: every GET route of the API, as an agent of another team and as a marketer, never shows a
conversation of the Spa team (its message text, subject or note); the admin and the Spa agent do see it."""

from __future__ import annotations

import re

from tests.support.builders import email
from tests.web.inbox_helpers import Client, auth, ingest, staff, team

SECRET = "SPA-SECRET-7781 massage booking complaint"
SUBJECT = "Spa-only subject 7781"
SKIP = {"/api/v1/events"}  # an endless stream; its team filter is covered in tests/web/test_live.py
# Known and reported to the web colleague: the customer timeline lists every conversation's
# subject and preview, whatever its team. Remove the entry when the route is scoped.
KNOWN_LEAKS: set[str] = set()


def _paths(client: Client, ids: dict[str, int]) -> list[str]:
    """Every GET route under /api/, with {id} filled by the secret conversation's and customer's ids."""
    out: set[str] = set()
    for route in client.app.router.routes():
        if route.method != "GET" or route.resource is None:
            continue
        info = route.resource.get_info()
        template = info.get("path") or info.get("formatter") or ""
        if not template.startswith("/api/") or template in SKIP:
            continue
        if "{" not in template:
            out.add(template)
            continue
        for value in ids.values():
            out.add(re.sub(r"\{\w+(:[^}]*)?\}", str(value), template))
    return sorted(out)


async def test_no_route_shows_another_teams_conversation(client: Client) -> None:
    s = await staff(client)
    await team(client, "Front desk", s["agent"][0])
    spa = await team(client, "Spa", s["other"][0])
    secret = await ingest(client, email("<spa1@example.com>", "spa.guest@example.com", subject=SUBJECT, body=SECRET))
    admin = s["admin"][1]
    moved = await client.post(f"/api/v1/conversations/{secret.conversation_id}/assign", headers=auth(admin),
                              json={"team_id": spa})
    assert moved.status == 200
    assert secret.conversation_id and secret.customer_id and secret.message_id
    paths = _paths(client, {"conversation": secret.conversation_id, "customer": secret.customer_id,
                            "message": secret.message_id})
    assert len(paths) > 20
    leaks, admin_sees = [], False
    for path in paths:
        for who in ("agent", "marketer"):
            response = await client.get(path, headers=auth(s[who][1]))
            body = (await response.read()).decode("utf-8", "replace")
            if response.status < 500 and (SECRET in body or SUBJECT in body):
                leaks.append(f"{who} GET {path} -> {response.status}")
            assert response.status < 500, (who, path, body[:300])
        admin_body = (await (await client.get(path, headers=auth(admin))).read()).decode("utf-8", "replace")
        admin_sees = admin_sees or SECRET in admin_body
    assert admin_sees  # the walk reaches the data at all
    known = {leak.format(customer=secret.customer_id) for leak in KNOWN_LEAKS}
    assert [leak for leak in leaks if not any(leak.startswith(k) for k in known)] == []
