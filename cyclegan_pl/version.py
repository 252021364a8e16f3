"""The package version: one place, read by pyproject.toml and by what records which version wrote a file."""

__version__ = "0.3.0"
