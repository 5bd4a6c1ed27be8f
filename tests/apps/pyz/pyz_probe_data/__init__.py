"""Data and code of the pyz probe: a resource file, and a function that fails on a known line."""


def fail():
    raise ValueError("raised inside the archive")
