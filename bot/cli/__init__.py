"""The `operator` command (`bot.cli.main`); each command imports what it runs when it runs."""
