"""Connectors bring sensor events in: MQTT, NATS JetStream (a worker group, see
``nats.py`` and :mod:`safecity.sensing.nats_worker`) and HTTP batch ingest.

Each connector is described by a manifest (``manifests/<name>.yaml``, see
:mod:`safecity.sensing.connectors.manifest`), validates every message against the event
catalogue (:mod:`safecity.sensing.event_types`) and sends what fails to a dead-letter sink
(:mod:`safecity.sensing.connectors.deadletter`) with the reason, without stopping.
"""
