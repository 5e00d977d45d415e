"""The HTTP listener and its routes."""
