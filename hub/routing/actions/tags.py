"""Add or remove tags on the conversation or the customer."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from hub.routing.actions.base import ActionContext, Params, action, fail

Tag = str


class Tags(Params):
    add: list[Tag] = Field(default_factory=list, max_length=50)
    remove: list[Tag] = Field(default_factory=list, max_length=50)
    on: Literal["conversation", "customer"] = "conversation"

    @model_validator(mode="after")
    def _something(self) -> Tags:
        if not self.add and not self.remove:
            raise ValueError("give tags to add or remove")
        if any(not t.strip() or len(t) > 60 for t in [*self.add, *self.remove]):
            raise ValueError("tags are 1-60 characters")
        return self


@action("tags", "add or remove tags on the conversation or the customer", Tags)
async def run(ctx: ActionContext, params: Tags) -> None:
    target = await (ctx.conversation() if params.on == "conversation" else ctx.customer())
    if target is None:
        raise fail(f"this event has no {params.on}", "on")
    kept = [t for t in target.tags if t not in params.remove]
    # A new list, never mutated in place: the ORM only sees assignment to JSON columns.
    target.tags = [*kept, *(t for t in params.add if t not in kept)]
