"""Alerting by SMS: alert notifications in, grouped numbered texts out, acting on them by reply."""
