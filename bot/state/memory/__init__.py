"""The shared state in this process's memory: the embedded default, one process per deployment."""
