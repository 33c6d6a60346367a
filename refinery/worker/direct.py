"""Binding the worker's compiled loops to librdkafka's own header lists (`refinery/include/kafka_direct.h`).

confluent-kafka builds Python objects for a consumed record's headers on `headers()` and parses them
back on `produce(headers=...)`; the routing loop only reads a few values and the writer forwards them
unchanged, so once bound both use the list librdkafka already holds (bench/results/NOTES.md §2, eleventh
round, says what that saves). Binding checks the objects it will read on live instances and takes the
functions from the librdkafka that confluent-kafka itself loaded; when anything does not fit, the loops
keep confluent-kafka's public API (the reference, and what the Python path always uses).
"""

from __future__ import annotations

import logging
import os
from types import ModuleType

from confluent_kafka import Message, Producer

log = logging.getLogger(__name__)

try:  # compiled with the package (setup.py)
    from refinery.routing import _route_fast
    from refinery.worker import _write_fast

    MODULES: tuple[ModuleType, ...] = (_route_fast, _write_fast)
except ImportError:  # pragma: no cover - a machine that could not compile them
    MODULES = ()


def loaded_librdkafka(maps: str = "/proc/self/maps") -> str | None:
    """The path of the one librdkafka mapped into this process (confluent-kafka's, bundled in its wheel
    or the system's), or None when there is none or more than one."""
    try:
        with open(maps, encoding="utf-8", errors="replace") as f:
            paths = {
                line.split(None, 5)[5].strip() for line in f if line.count(" ") >= 5 and "librdkafka" in line
            }
    except OSError:
        return None
    found = {p for p in paths if os.path.basename(p).startswith("librdkafka") and ".so" in p}
    return found.pop() if len(found) == 1 else None


def is_bound() -> bool:
    """Whether the compiled loops (and the acknowledgement interceptor) use librdkafka's objects now: each
    module keeps its own binding (kafka_direct.h), so all of them must be bound."""
    return bool(MODULES) and all(module.bound() for module in MODULES)


def bind(producer: Producer) -> str | None:
    """Bind the compiled loops, checking the layout on a probe Message and on `producer`. Returns None
    when bound, else why not (the loops then use confluent-kafka's API)."""
    if not MODULES:
        return "the compiled loops are not built"
    library = loaded_librdkafka()
    if library is None:
        return "no single librdkafka is loaded in this process"
    headers: list[tuple[str, str | bytes | None]] = [("probe", b"1")]
    fields = ("probe-topic", b"probe-value", b"probe-key", headers)
    probe = Message(topic=fields[0], value=fields[1], key=fields[2], headers=headers)
    for module in MODULES:  # each checks the probe's fields hold exactly these objects
        why = module.bind(library, Message, probe, fields, Producer, producer)
        if why is not None:
            unbind()
            return str(why)
    return None


def unbind() -> None:
    """Back to confluent-kafka's API in every compiled loop."""
    for module in MODULES:
        module.bind(None, None, None, None, None, None)


def ack_plugin() -> str | None:
    """The path to give librdkafka as `plugin.library.paths` so that the producer counts its batches'
    acknowledgements (`_write_fast`'s interceptor, refinery/worker/write_fast.c), or None (logged) when
    it cannot. Counting also needs the binding (`enable`): unbound, the interceptor counts nothing."""
    if not MODULES:
        return None
    library = loaded_librdkafka()
    if library is None:
        why = "no single librdkafka is loaded in this process"
    else:
        why = _write_fast.acks_prepare(library)
    if why is not None:
        log.warning("acknowledgements are not counted per record (batches complete when the producer "
                    "drains): %s", why)  # fmt: skip
        return None
    return str(_write_fast.__file__)


def enable(producer: Producer, wanted: bool) -> bool:
    """Bind when `wanted` (the worker's `direct_headers` setting), logging why not; unbind otherwise."""
    if not wanted:
        unbind()
        return False
    why = bind(producer)
    if why is not None:
        log.warning("header lists are converted to Python objects (slower): %s", why)
        return False
    return True
