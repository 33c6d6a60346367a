"""`refinery-reconcile`: checks everything on the ingest topics against the derived topics and the DLQ."""
