"""Domain logic. Imports neither discord, aiohttp nor SQLAlchemy (enforced by ruff TID251)."""
