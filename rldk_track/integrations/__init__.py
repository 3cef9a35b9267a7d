"""Integrations: adapters that turn a training framework's events into Run calls (TRL, OpenRLHF)."""
