"""Entities, value objects, errors and ports. Pure: no Discord, no HTTP, no SQL."""
