"""The conversation: parse with the user's context, check the role, run one small handler, keep the context."""
