"""What librdkafka's `error_cb` reported, kept for the caller's error messages.

librdkafka reports client-level trouble (credentials refused, no broker reachable, a fatal idempotence
error) only through `error_cb`; a metadata request or a delivery then fails with a generic "transport
failure" or "message timed out". `ClientErrors` remembers the last such problem until something
succeeds, so the SDK can say "authentication failed for user 'alice' at host:9092: <broker message>".
An authentication failure outranks the transport errors that follow it (the broker hangs up after
refusing the credentials). Messages never contain the password.
"""

from __future__ import annotations

import logging

from confluent_kafka import KafkaError

from common.config import KafkaSettings

log = logging.getLogger(__name__)

AUTH_ERRORS = frozenset({KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED})
BROKER_ERRORS = frozenset(
    {KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT, KafkaError._SSL, KafkaError._RESOLVE}
)


class ClientErrors:
    """Pass `on_error` as librdkafka's `error_cb`; read `problem`; call `clear` after a success."""

    def __init__(self, kafka: KafkaSettings) -> None:
        who = f"user {kafka.sasl_username!r} " if kafka.sasl_username else ""
        self._auth_context = f"authentication failed for {who}at {kafka.bootstrap_servers}"
        self._secret = kafka.sasl_password.get_secret_value() if kafka.sasl_password else ""
        self.auth: str | None = None
        self.broker: str | None = None

    @property
    def problem(self) -> str | None:
        """The last authentication failure, else the last broker error, since the last success."""
        return self.auth or self.broker

    def clear(self) -> None:
        if self.auth or self.broker:
            self.auth = self.broker = None

    def on_error(self, err: KafkaError) -> None:
        code = err.code()
        is_auth = code in AUTH_ERRORS
        if is_auth:
            problem = f"{self._auth_context}: {err.str()}"
        elif code in BROKER_ERRORS or err.fatal():
            problem = err.str()
        else:
            log.debug("kafka client error", extra={"error": err.str()})
            return
        if self._secret:
            problem = problem.replace(self._secret, "***")
        if code == KafkaError._ALL_BROKERS_DOWN and self.broker is not None and not err.fatal():
            return  # "1/1 brokers are down" says less than the connection failure that caused it
        if problem != (self.auth if is_auth else self.broker):  # log each new problem once
            # Transport trouble is already in librdkafka's own (deduplicated) log: DEBUG here.
            level = logging.ERROR if is_auth or err.fatal() else logging.DEBUG
            log.log(level, "kafka client error", extra={"error": problem, "fatal": err.fatal()})
        if is_auth:
            self.auth = problem
        else:
            self.broker = problem
