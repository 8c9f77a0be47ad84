"""Set the customer's lifecycle stage, with a history row caused by the rule."""

from __future__ import annotations

from typing import Literal

from hub.routing.actions.base import ActionContext, Params, action, fail
from hub.store.models import StageChange
from hub.store.types import utcnow


class SetStage(Params):
    stage: Literal["prospect", "cultivable", "key", "advocate", "sub_zero"]


@action("set_stage", "set the customer's lifecycle stage", SetStage)
async def run(ctx: ActionContext, params: SetStage) -> None:
    customer = await ctx.customer()
    if customer is None or customer.id is None:
        raise fail("this event has no customer")
    if customer.lifecycle_stage == params.stage:
        return
    ctx.session.add(StageChange(customer_id=customer.id, from_stage=customer.lifecycle_stage, to_stage=params.stage,
                                cause="rule", actor=ctx.actor))
    customer.lifecycle_stage, customer.updated_at = params.stage, utcnow()
