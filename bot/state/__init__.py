"""The shared state of a running bot: its interfaces (`protocols`), kept in memory or in Redis."""
