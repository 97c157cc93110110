"""Adapters to the outside world (GitHub, Alertmanager, probes, SMTP). Every call has a timeout."""
