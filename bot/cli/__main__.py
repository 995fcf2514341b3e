"""`python -m bot.cli`: the same as the `operator` command."""

from bot.cli.main import main

main()
