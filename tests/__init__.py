"""The test suite (a regular package, so that a third-party top-level `tests`, as flair's wheel installs, never shadows it)."""
