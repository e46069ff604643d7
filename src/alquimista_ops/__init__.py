"""AlquimistaAI Operational Dashboard."""

__version__ = "0.1.0"
