"""The compiled part of the package; everything else is declared in pyproject.toml.

`refinery.routing._envelope_fast` is the worker's envelope fast path (`refinery/routing/guards.py` falls
back to the pure-Python check, the reference, when it is missing); `refinery.routing._route_fast` its
routing loop (`refinery/routing/plan.py`; `route_batch` routes in Python without it) and
`refinery.worker._write_fast` its produce loop (`BatchWriter.write` loops in Python without it); `producers._avro_encoder` the SDK's
Avro fast path (`producers/avro_fast.py`: fastavro's validation and writer stay the reference).
`optional`: a machine without a C compiler still installs the package; CI, which measures what
production runs, requires both (tests/refinery/routing/test_envelope_fast.py,
tests/producers/test_avro_encoder.py).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("refinery.routing._envelope_fast", ["refinery/routing/envelope_fast.c"], optional=True),
        Extension("refinery.routing._route_fast", ["refinery/routing/route_fast.c"], optional=True),
        Extension("refinery.worker._write_fast", ["refinery/worker/write_fast.c"], optional=True),
        Extension("producers._avro_encoder", ["producers/avro_encoder.c"], optional=True),
    ]
)
