"""The classifier as a job: one run over every customer, its moves announced to the runtime's rules."""

from __future__ import annotations

import logging
from typing import Any

from hub.analytics import classifier
from hub.runtime import Runtime

log = logging.getLogger(__name__)


async def run_classifier(runtime: Runtime, *, dry_run: bool = False,
                         rules: list[classifier.StageRuleSpec] | None = None) -> classifier.ClassifyResult:
    """Classify in one transaction, raising `customer.stage_changed` through the runtime's handlers."""
    async with runtime.factory() as session, session.begin():
        result = await classifier.classify(session, rules=rules, dry_run=dry_run, handlers=runtime.handlers)
    log.info("classifier: %d customers moved%s", result.changed, " (dry run)" if dry_run else "")
    return result


async def classify_job(ctx: dict[str, Any]) -> dict[str, int]:
    """Cron: the nightly classification (arq passes ctx; the runtime is in ctx["hub"])."""
    result = await run_classifier(ctx["hub"])
    return {"changed": result.changed}
