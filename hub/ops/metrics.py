"""Prometheus series of the hub, in a registry of its own.

Counters and histograms count what this process did (ingests, requests, jobs, sends); gauges
about shared state (outbox depth and age, campaigns, IMAP, workers) are refreshed from the
database at scrape time, so every process reports the same deployment-wide figures.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest

from hub import __version__
from hub.ops.status import Snapshot

REGISTRY = CollectorRegistry(auto_describe=True)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_FAST = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_SLOW = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)

BUILD = Info("hub_build", "Version of the running hub.", registry=REGISTRY)
BUILD.info({"version": __version__})

INGEST = Counter("hub_ingest_messages_total", "Inbound messages by channel and outcome (stored, duplicate, ...).",
                 ["channel", "outcome"], registry=REGISTRY)
INGEST_SECONDS = Histogram("hub_ingest_seconds", "From arrival at the hub (request or outbox row) to the stored "
                           "message's commit.", ["channel"], buckets=_SLOW, registry=REGISTRY)
HTTP_SECONDS = Histogram("hub_http_request_seconds", "HTTP requests by route name, method and status class.",
                         ["route", "method", "status"], buckets=_FAST, registry=REGISTRY)
WEBHOOK_REJECTS = Counter("hub_webhook_rejects_total", "Webhook requests refused, by route and reason.",
                          ["route", "reason"], registry=REGISTRY)
JOB_SECONDS = Histogram("hub_job_seconds", "Outbox jobs run by this process, by kind and outcome.",
                        ["kind", "outcome"], buckets=_SLOW, registry=REGISTRY)
JOB_FAILURES = Counter("hub_job_failures_total", "Outbox jobs that raised, by kind and exception class.",
                       ["kind", "error"], registry=REGISTRY)
SEND_SECONDS = Histogram("hub_send_seconds", "Provider sends (SMTP, Twilio) by channel and outcome.",
                         ["channel", "outcome"], buckets=_SLOW, registry=REGISTRY)
LOGIN_REFUSED = Counter("hub_login_refused_total", "Password logins refused, by reason.", ["reason"],
                        registry=REGISTRY)

OUTBOX_ITEMS = Gauge("hub_outbox_items", "Outbox rows by kind and live status (queued, running, dead).",
                     ["kind", "status"], registry=REGISTRY)
OUTBOX_OLDEST = Gauge("hub_outbox_oldest_due_seconds", "Age of the oldest due, still queued outbox row, by kind.",
                      ["kind"], registry=REGISTRY)
OUTBOX_STUCK = Gauge("hub_outbox_stuck_items", "Outbox rows running longer than HUB_OUTBOX_STUCK_SECONDS.",
                     registry=REGISTRY)
QUARANTINE = Gauge("hub_quarantine_items", "Quarantined inputs and dead jobs not replayed yet, by stage.",
                   ["stage"], registry=REGISTRY)
IMAP_LAG = Gauge("hub_imap_checkpoint_age_seconds", "Seconds since each mailbox's IMAP checkpoint last moved.",
                 ["mailbox"], registry=REGISTRY)
CAMPAIGN = Gauge("hub_campaign_recipients", "Recipients of active campaigns by status (progress).",
                 ["campaign", "status"], registry=REGISTRY)
WORKERS = Gauge("hub_workers_alive", "`hub worker` processes with a fresh heartbeat in Redis.", registry=REGISTRY)
ARQ_QUEUED = Gauge("hub_arq_queued_jobs", "Jobs waiting in the arq queue.", registry=REGISTRY)


def status_class(status: int) -> str:
    """2xx, 4xx...: keeps the label set small."""
    return f"{status // 100}xx"


def apply_snapshot(snap: Snapshot) -> None:
    """Replace the shared-state gauges with a fresh reading (no await inside: scrapes never interleave)."""
    for gauge in (OUTBOX_ITEMS, OUTBOX_OLDEST, QUARANTINE, IMAP_LAG, CAMPAIGN):
        gauge.clear()
    for kind, counts in snap.outbox.items():
        for status, count in counts.items():
            OUTBOX_ITEMS.labels(kind, status).set(count)
    for kind, age in snap.oldest_queued_s.items():
        OUTBOX_OLDEST.labels(kind).set(age)
    OUTBOX_STUCK.set(snap.stuck)
    for stage, count in snap.quarantine.items():
        QUARANTINE.labels(stage).set(count)
    for mailbox, age in snap.mailboxes.items():
        IMAP_LAG.labels(mailbox).set(age)
    for campaign_id, by_status in snap.campaigns.items():
        for status, count in by_status.items():
            CAMPAIGN.labels(str(campaign_id), status).set(count)
    WORKERS.set(len(snap.workers))
    ARQ_QUEUED.set(snap.arq_queued or 0)


def exposition() -> bytes:
    """The registry in Prometheus' text format."""
    return generate_latest(REGISTRY)
