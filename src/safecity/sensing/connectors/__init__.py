"""Connectors bring sensor events in: MQTT now, NATS and HTTP batch ingest next.

Each connector is described by a manifest (``manifests/<name>.yaml``, see
:mod:`safecity.sensing.connectors.manifest`), validates every message against the event
catalogue (:mod:`safecity.sensing.event_types`) and sends what fails to a dead-letter sink
(:mod:`safecity.sensing.connectors.deadletter`) with the reason, without stopping.
"""
