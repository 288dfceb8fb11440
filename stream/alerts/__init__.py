"""Alerts: signal trust, rules, NEWS2, falls and the alert lifecycle (pure Python)."""
