"""An aiosmtpd sink in its own process: `python -m tests.integration.campaigns.sink_proc PORT OUT [DELAY]`.

Each accepted message appends one JSON line (rcpt, recipient header, subject, text, unsubscribe
header) to OUT. With DELAY the reply to DATA waits that long first; a client killed meanwhile
never gets a 250, and the message is not recorded (aiosmtpd cancels the handler on disconnect).
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import re
import signal
import sys
import threading
from typing import Any

from aiosmtpd.controller import Controller

_UNSUBSCRIBE = re.compile(rb"^List-Unsubscribe:([^\r\n]*(?:\r\n[ \t][^\r\n]*)*)", re.MULTILINE | re.IGNORECASE)


class Recorder:
    def __init__(self, out: str, delay: float) -> None:
        self.file = open(out, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 - lives as long as the process
        self.delay = delay
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.delay:
            await asyncio.sleep(self.delay)
        msg = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        body = msg.get_body(("plain",))
        # The header as it came over the wire (unfolded, not decoded): mail providers read it raw.
        head = envelope.original_content.split(b"\r\n\r\n", 1)[0]
        found = _UNSUBSCRIBE.search(head)
        raw = found and found.group(1).decode("ascii", "backslashreplace")
        line = json.dumps({"rcpt": envelope.rcpt_tos[0], "recipient": msg["X-Hub-Recipient"],
                           "subject": msg["Subject"], "text": body.get_content() if body else "",
                           "unsubscribe": msg["List-Unsubscribe"], "post": msg["List-Unsubscribe-Post"],
                           "unsubscribe_raw": raw and " ".join(str(raw).split())})
        with self.lock:
            self.file.write(line + "\n")
        return "250 2.0.0 Message accepted for delivery"


def main() -> None:
    port, out = int(sys.argv[1]), sys.argv[2]
    delay = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
    controller = Controller(Recorder(out, delay), hostname="127.0.0.1", port=port)
    controller.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
