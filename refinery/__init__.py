"""Refinery stream layer: a Faust app hosting a batched confluent-kafka routing data plane."""
