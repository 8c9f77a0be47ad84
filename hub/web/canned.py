"""Canned responses: saved replies with `{{ customer.first_name }}`-style variables, filled per conversation."""

from __future__ import annotations

import re

from hub.store.models import Agent, Conversation, Customer

VARIABLE = re.compile(r"\{\{\s*([a-z_]+\.[a-z_]+)\s*\}\}")


def variables(customer: Customer, conversation: Conversation, agent: Agent) -> dict[str, str]:
    """The values a canned response may use."""
    name = customer.display_name or ""
    first = name.split()[0] if name.split() and "@" not in name and not name.startswith("+") else ""
    return {
        "customer.name": name, "customer.first_name": first, "customer.language": customer.language,
        "conversation.subject": conversation.subject or "", "conversation.channel": conversation.channel,
        "agent.name": agent.name, "agent.first_name": agent.name.split()[0] if agent.name.split() else "",
        "agent.email": agent.email,
    }


def render(body: str, values: dict[str, str]) -> tuple[str, list[str]]:
    """Fill known variables; unknown ones stay as written and are reported, so nothing is silently lost."""
    missing: list[str] = []

    def fill(match: re.Match[str]) -> str:
        key = match.group(1)
        if key in values:
            return values[key]
        missing.append(key)
        return match.group(0)

    return VARIABLE.sub(fill, body), list(dict.fromkeys(missing))
