"""Start-up hook: the campaign SendContext (queue, throttle, senders), trackers and mail unsubscribes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping

from hub import runtime as hub_runtime
from hub.campaigns import mailto, tracking
from hub.campaigns.jobs import CONTEXT_KEY, embedded_loop
from hub.campaigns.queue import ArqBatchQueue, BatchQueue, LocalBatchQueue
from hub.campaigns.sending import SendContext, send_batch
from hub.campaigns.throttle import Bucket, LocalBucket, RedisBucket, Throttle
from hub.core.jobs import JobContext, Sender


class LiveSenders(Mapping[str, Sender]):
    """The runtime's senders as they are when a send happens (channels may wire after us)."""

    def __init__(self, jobs: JobContext) -> None:
        self.jobs = jobs

    def __getitem__(self, key: str) -> Sender:
        return self.jobs.senders[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.jobs.senders)

    def __len__(self) -> int:
        return len(self.jobs.senders)


@hub_runtime.plugin
def wire_campaigns(runtime: hub_runtime.Runtime) -> None:
    """Shared Redis throttle and arq batches with Redis; in-process equivalents without it."""
    for handler in (tracking.on_reply, tracking.on_delivery):
        if handler not in runtime.handlers:
            runtime.handlers.append(handler)
    runtime.extras[hub_runtime.UNSUBSCRIBE_MAIL] = mailto.unsubscribe_by_mail
    settings = runtime.settings
    bucket: Bucket = RedisBucket(runtime.redis) if runtime.redis is not None else LocalBucket()
    throttle = Throttle(bucket, dict(settings.campaign_rates), burst=settings.campaign_burst)
    queue: BatchQueue
    sc = SendContext(runtime.factory, LiveSenders(runtime.jobs), throttle, queue=None,  # type: ignore[arg-type]
                     settings=settings, slots=asyncio.Semaphore(settings.campaign_parallel_chunks))
    if runtime.redis is not None:
        queue = ArqBatchQueue(runtime.redis)
        sc.share = True  # several workers: batch jobs pull more rows into spare slots
    else:
        queue = LocalBatchQueue(lambda campaign_id, ids: send_batch(sc, campaign_id, ids))
    sc.queue = queue
    runtime.extras[CONTEXT_KEY] = sc
    if runtime.redis is None:  # with Redis, `hub worker` runs the scheduler as an arq cron
        runtime.extras.setdefault(hub_runtime.BACKGROUND, []).append(embedded_loop)
