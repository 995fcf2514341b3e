"""The `operator` command: its groups and commands are in `bot.cli.main`, each importing what it runs."""

from bot.cli.main import main

__all__ = ["main"]
