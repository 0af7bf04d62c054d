"""Errors every layer raises: the bottom of the import graph."""


class DataError(ValueError):
    """Bad input data; the message names the file and the record."""
