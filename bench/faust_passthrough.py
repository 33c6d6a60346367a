"""A bare Faust agent that copies records from the ingest topics to one sink topic (no decisions): the
"what does the stream framework alone cost" reference for the routing benchmark.

Run by the harness as a subprocess:
    python -m bench.faust_passthrough worker -l warning
with `REFINERY_BENCH_FAUST_*` settings (`common.config.BenchSettings`) naming the app id (= consumer
group), the source topics and the sink topic; the broker comes from `REFINERY_KAFKA_BOOTSTRAP_SERVERS`.
"""

from __future__ import annotations

import socket

import faust

from common.config import BenchSettings, KafkaSettings


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


settings = BenchSettings()
app = faust.App(
    settings.faust_app_id,
    broker=f"kafka://{KafkaSettings().bootstrap_servers}",
    store="memory://",
    datadir=str(settings.faust_data_dir or f"{settings.faust_app_id}-data"),
    # Faust's `worker` command still binds its web server (0.0.0.0:6066 by default) although web_enabled
    # is off, which collided with a running stack's worker: a free loopback port instead
    web_enabled=False,
    web_bind="127.0.0.1",
    web_host="127.0.0.1",
    web_port=_free_port(),
    topic_partitions=12,
    consumer_auto_offset_reset="earliest",
    producer_linger_ms=20,
    stream_buffer_maxsize=20_000,
)
source = app.topic(
    *settings.faust_sources, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
)
sink = app.topic(
    settings.faust_sink, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
)


@app.agent(source)
async def copy(stream: faust.StreamT) -> None:
    async for event in stream.events():
        await sink.send(key=event.key, value=event.value, headers=event.headers)


if __name__ == "__main__":
    app.main()
