"""The compiled part of the package; everything else is declared in pyproject.toml.

`refinery.routing._envelope_fast` is the worker's envelope fast path (`refinery/routing/guards.py` falls
back to the pure-Python check, the reference, when it is missing). `optional`: a machine without a C
compiler still installs the package; CI, which measures what production runs, requires it
(tests/refinery/routing/test_envelope_fast.py).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("refinery.routing._envelope_fast", ["refinery/routing/envelope_fast.c"], optional=True),
    ]
)
