"""lumabot: a Slack image studio on Luma's image models."""

__version__ = "0.1.0"
