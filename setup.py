"""The compiled part of the package; everything else is declared in pyproject.toml.

Fast paths, each with a Python version that stays the reference and runs when it is missing:
`refinery.routing._envelope_fast`, the worker's envelope check (`refinery/routing/guards.py`);
`refinery.routing._route_fast`, its routing loop (`refinery/routing/plan.py`, `route_batch`);
`refinery.worker._write_fast`, its produce loop and delivery counter (`BatchWriter.write`,
`refinery/worker/inflight.py`); both read and copy records' headers from librdkafka's own lists once
bound (`refinery/include/kafka_direct.h`, `refinery/worker/direct.py`); `producers._avro_encoder`, the
SDK's Avro writer (`producers/avro_fast.py`: fastavro's validation and writer stay the reference).
`optional`: a machine without a C compiler still installs the package; CI, which measures what
production runs, requires them (the `test_it_is_built_where_ci_runs` tests).
"""

from setuptools import Extension, setup

# the worker's fast paths share refinery/include/fast_helpers.h
FAST_HELPERS = {
    "include_dirs": ["refinery/include"],
    "depends": ["refinery/include/fast_helpers.h", "refinery/include/kafka_direct.h"],
}

setup(
    ext_modules=[
        Extension("refinery.routing._envelope_fast", ["refinery/routing/envelope_fast.c"], optional=True),
        Extension(
            "refinery.routing._route_fast", ["refinery/routing/route_fast.c"], optional=True, **FAST_HELPERS
        ),
        Extension(
            "refinery.worker._write_fast", ["refinery/worker/write_fast.c"], optional=True, **FAST_HELPERS
        ),
        Extension("producers._avro_encoder", ["producers/avro_encoder.c"], optional=True),
    ]
)
