"""Start-up hook: the Twilio sender for `sms` and `whatsapp`, its throttle, and reply checks."""

from __future__ import annotations

from hub import runtime as hub_runtime
from hub.channels.sms.checks import check_reply
from hub.channels.sms.inbound import INGEST_JOB, ingest_job
from hub.channels.sms.sender import TwilioSender
from hub.channels.sms.spool import Spool
from hub.channels.sms.throttle import Bucket, LocalBucket, RedisBucket, Throttle, parse_overrides
from hub.core.envelopes import Channel

SENDER_KEY = "sms.sender"
SPOOL_KEY = "sms.spool"


@hub_runtime.plugin
def wire_sms(runtime: hub_runtime.Runtime) -> None:
    """Register the sender when Twilio credentials are set; reply checks always apply."""
    if check_reply not in runtime.handlers:
        runtime.handlers.append(check_reply)
    runtime.jobs.handlers[INGEST_JOB] = ingest_job(runtime)
    runtime.jobs.batch_kinds.add(INGEST_JOB)  # a burst of webhooks is stored in a few transactions
    runtime.extras[SPOOL_KEY] = Spool(runtime, INGEST_JOB)
    settings = runtime.settings
    if not (settings.twilio_account_sid and settings.twilio_auth_token):
        return
    # Workers on several machines share Redis, so the bucket must live there when it exists.
    bucket: Bucket = RedisBucket(runtime.redis) if runtime.redis is not None else LocalBucket()
    throttle = Throttle(bucket, parse_overrides(settings.sms_rates), burst=settings.sms_burst)
    sender = TwilioSender(settings, runtime.factory, throttle)
    runtime.jobs.senders = {**runtime.jobs.senders, Channel.SMS.value: sender, Channel.WHATSAPP.value: sender}
    runtime.extras[SENDER_KEY] = sender
    runtime.extras.setdefault(hub_runtime.CLOSERS, []).append(sender.aclose)  # its HTTP session
