"""Sensing: the sensor registry, connectors, event types and rules."""
