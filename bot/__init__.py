"""Operator's service side: settings, conversation context, command handlers, the CLI."""
