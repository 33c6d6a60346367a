"""The routing core, free of I/O: route sets (`rules`), the compiled router, the pre-routing guards and
the per-batch decision of every record's outputs or dead letter."""
