"""Shared machinery with no domain knowledge: db, bus, workflow, jobs, geo, errors."""
