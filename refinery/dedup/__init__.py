"""Dedup by message id: the per-partition store, its changelog topic and the rebuild after a restart."""
