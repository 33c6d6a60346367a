"""The local runner: Kafka from its Maven jars (`refinery-kafka`) and the whole pipeline as background
processes (`refinery-stack`). Used by `scripts/run.sh`, the test fixtures, the benchmarks and CI; no
service imports it."""
