"""SCoFT: self-contrastive fine-tuning of Stable Diffusion on community-collected cultural data."""

__version__ = "0.1.0"
