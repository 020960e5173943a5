"""Citizen e-services and verifiable e-certificates (issue 10)."""
