"""Request and response bodies of the JSON API; unknown fields are refused (extra='forbid')."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class LoginBody(Body):
    email: str = Field(min_length=3, max_length=320)
    password: str = Field(min_length=1, max_length=500)


class AgentCreate(Body):
    email: str = Field(min_length=3, max_length=320)
    role: Literal["admin", "agent", "marketer"] = "agent"
    name: str | None = Field(default=None, max_length=200)
    password: str | None = Field(default=None, max_length=500)


class IdentityIn(Body):
    kind: Literal["email", "phone"]
    value: str = Field(min_length=1, max_length=320)


class CustomerCreate(Body):
    display_name: str = Field(default="", max_length=300)
    language: str = Field(default="it", max_length=10)
    timezone: str = Field(default="Europe/Rome", max_length=64)
    lifecycle_stage: Literal["prospect", "cultivable", "key", "advocate", "sub_zero"] = "prospect"
    tags: list[str] = Field(default_factory=list, max_length=100)
    attributes: dict[str, Any] = Field(default_factory=dict)
    identities: list[IdentityIn] = Field(default_factory=list, max_length=50)


class CustomerUpdate(Body):
    display_name: str | None = Field(default=None, max_length=300)
    language: str | None = Field(default=None, max_length=10)
    timezone: str | None = Field(default=None, max_length=64)
    lifecycle_stage: Literal["prospect", "cultivable", "key", "advocate", "sub_zero"] | None = None
    tags: list[str] | None = Field(default=None, max_length=100)
    attributes: dict[str, Any] | None = None


class MergeBody(Body):
    source_id: int = Field(gt=0)


class StatusBody(Body):
    status: Literal["open", "pending", "snoozed", "resolved"]
    snoozed_until: datetime | None = None


class AssignBody(Body):
    agent_id: int | None = Field(default=None, gt=0)
    team_id: int | None = Field(default=None, gt=0)


class NoteBody(Body):
    body: str = Field(min_length=1, max_length=20000)


class ReplyBody(Body):
    body: str = Field(min_length=1, max_length=100000)
    channel: Literal["email", "sms", "whatsapp"] | None = None
    to: str | None = Field(default=None, max_length=320)
    subject: str | None = Field(default=None, max_length=998)
