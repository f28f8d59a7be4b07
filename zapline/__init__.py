"""Zapline: the realtime core of a WhatsApp customer-service desk (CLI, settings, wiring)."""

__version__ = "0.1.0"
