"""DisCo: distilled contrastive learning, re-implemented faithfully to the official code."""

__version__ = "0.1.0"
