"""Reproductions of the seed experiments."""
