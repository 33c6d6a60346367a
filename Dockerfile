# One image for all of our services (registry, workers, catalog, gateway, demo producer); compose picks the command.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# Dependencies first, so editing code does not reinstall them: install the project's metadata with
# empty packages, then copy the code and reinstall only our own (no dependency resolution).
COPY pyproject.toml README.md ./
RUN mkdir -p common devstack proto producers schema_registry refinery gateway \
    && for p in common devstack proto producers schema_registry refinery gateway; do touch "$p/__init__.py"; done \
    && pip install . \
    && rm -rf common devstack proto producers schema_registry refinery gateway build *.egg-info

COPY common ./common
COPY devstack ./devstack
COPY proto ./proto
COPY producers ./producers
COPY schema_registry ./schema_registry
COPY refinery ./refinery
COPY gateway ./gateway
COPY setup.py ./
# a C compiler for the worker's compiled envelope check and the SDK's Avro encoder (setup.py), removed
# again after the build
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
    && pip install --no-deps . && rm -rf build *.egg-info \
    && (cd / && python -c "import refinery.routing._envelope_fast, refinery.routing._route_fast, refinery.worker._write_fast, producers._avro_encoder") \
    && apt-get purge -y --auto-remove gcc libc6-dev && rm -rf /var/lib/apt/lists/*

# Non-root at run time, in a writable working folder (Faust keeps local state in its cwd). Every service
# is configured through REFINERY_* variables (common/config.py).
RUN useradd --create-home --uid 10001 refinery && install -d -o refinery -g refinery /var/lib/refinery
USER refinery
WORKDIR /var/lib/refinery
ENV REFINERY_LOG_FORMAT=json
CMD ["refinery-registry"]
