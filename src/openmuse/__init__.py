"""OpenMuse: an open, self-hostable reasoning assistant (Instant, Thinking, Contemplating)."""

__version__ = "0.1.0"
