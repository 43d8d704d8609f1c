"""Importers of real crash records through the public API (clients only: shared/ and httpx, no service code)."""
