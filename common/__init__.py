"""Code shared by every Refinery package: configuration, logging, errors, the envelope helpers,
the envelope <-> Kafka header mapping, topic names and the local Kafka runner.

Importing it turns off prometheus_client's `_created` series for the whole process (every service
imports `common`): a `<name>_created` gauge per counter and histogram doubles the series without
telling anyone anything (`refinery_topics_created_created` was the odd-looking result).
"""

from prometheus_client import disable_created_metrics

disable_created_metrics()
