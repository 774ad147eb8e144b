"""FineCode Extension Runner: runs one project's action handlers for the workspace manager."""

__version__ = "0.1.0"
