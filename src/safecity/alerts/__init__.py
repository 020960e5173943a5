"""Alerts: one open alert per (category, dedup key), routed to the station owning the
place, worked through acknowledge → on scene → resolved, escalated when its SLA passes."""
