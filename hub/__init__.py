"""The hub: a multichannel collaborative CRM messaging hub."""

__version__ = "0.1.0"
