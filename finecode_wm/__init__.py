"""FineCode Workspace Manager: runs actions across a workspace with one honest progress stream."""

__version__ = "0.1.0"
