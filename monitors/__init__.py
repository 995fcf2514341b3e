"""One adapter per monitoring backend, behind the `Monitor` protocol (arriving with issue 3)."""
