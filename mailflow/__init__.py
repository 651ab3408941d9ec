"""mailflow: the email desk of an online secretary service."""

__version__ = "0.1.0"
