"""librdkafka's own log, through Python logging, and one-line descriptions of an unreachable cluster.

Without a `logger`, librdkafka writes `%3|...|FAIL|rdkafka#producer-1| ...` to stderr for every failed
connection attempt (hundreds of lines for a wrong bootstrap address). `with_log(conf)` adds confluent-
kafka's `logger` property set to `LIBRDKAFKA_LOG`, which forwards each line to the `librdkafka` logger
at WARNING at most (librdkafka's "errors" are mostly retried by the client; the caller's own error says
what failed), and drops a line equal to one logged in the last `window_s` seconds (timings such as
"after 0ms in state CONNECT" and the client's name are ignored when comparing), so a wrong address
prints one line instead of one per retry. The lines are delivered when the client is polled.

`kafka_unreachable(bootstrap)` tries a TCP connection to each bootstrap address and, when none
answers, says why in one line ("Kafka at 127.0.0.1:1 is unreachable: connection refused"); commands
call it before waiting for a metadata request that cannot succeed, and errors use it to name the cause.
"""

from __future__ import annotations

import logging
import re
import socket
import threading
import time
from collections.abc import Mapping
from typing import Any

_TIMING = re.compile(r"\s*\(after \d+ms[^)]*\)|: \d+ identical error\(s\) suppressed|\d+/\d+ ")


class LibrdkafkaLog:
    """confluent-kafka's `logger`: forwards librdkafka's lines to Python logging, deduplicated."""

    def __init__(self, name: str = "librdkafka", *, window_s: float = 60.0) -> None:
        self.logger = logging.getLogger(name)
        self._window = window_s
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def log(self, level: int, msg: str, *args: Any) -> None:
        """Called by confluent-kafka as `log(level, "%s [%s] %s", facility, client, text)`."""
        level = min(level, logging.WARNING)
        if not self.logger.isEnabledFor(level):
            return
        facility, text = (args[0], args[2]) if len(args) == 3 else ("", msg % args if args else msg)
        key = f"{facility}|{_TIMING.sub('', str(text))}"
        now = time.monotonic()
        with self._lock:
            last = self._seen.get(key)
            if last is not None and now - last < self._window:
                return
            if len(self._seen) > 1000:
                self._seen.clear()
            self._seen[key] = now
        self.logger.log(level, "%s: %s", facility or "librdkafka", text)


LIBRDKAFKA_LOG = LibrdkafkaLog()


def with_log(conf: Mapping[str, Any]) -> dict[str, Any]:
    """`conf` plus confluent-kafka's `logger` property (see the module docstring)."""
    return {**conf, "logger": LIBRDKAFKA_LOG}


def _addresses(bootstrap: str) -> list[tuple[str, int]]:
    out = []
    for server in bootstrap.split(","):
        server = server.strip().split("://")[-1]
        host, _, port = server.rpartition(":")
        try:
            out.append((host.strip("[]") or "127.0.0.1", int(port)))
        except ValueError:
            out.append((server, 9092))
    return out


def _reason(exc: OSError) -> str:
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host name ({exc.strerror})"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "no answer (connection timed out)"
    return (exc.strerror or str(exc)).lower()


def kafka_unreachable(bootstrap: str, *, timeout_s: float = 2.0) -> str | None:
    """None if some bootstrap address accepts a TCP connection, else one line naming the address and why."""
    reasons = []
    for host, port in _addresses(bootstrap):
        try:
            with socket.create_connection((host, port), timeout=timeout_s):
                return None
        except OSError as exc:
            reasons.append(_reason(exc))
    causes = "; ".join(dict.fromkeys(reasons)) or "no address given"
    return f"Kafka at {bootstrap} is unreachable: {causes}"


def describe_failure(bootstrap: str, detail: str) -> str:
    """One line for a Kafka request that failed: the TCP cause if no bootstrap address answers, else
    `detail` (librdkafka's reason) with the address."""
    return kafka_unreachable(bootstrap, timeout_s=1.0) or f"Kafka at {bootstrap}: {detail}"


def error_text(exc: BaseException) -> str:
    """librdkafka's text of a KafkaException ("Failed to get metadata: ..."), else str(exc)."""
    first = exc.args[0] if exc.args else None
    return str(first.str()) if first is not None and hasattr(first, "str") else str(exc)
