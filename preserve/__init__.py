"""preserve — a digital-preservation repository for Vietnamese Party archives."""

__version__ = "0.1.0"
SOFTWARE_NAME = "preserve"
