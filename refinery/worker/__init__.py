"""The worker: the batched confluent-kafka data plane (consume -> route -> write -> commit), its
clients, its two delivery guarantees and its health and metrics."""
