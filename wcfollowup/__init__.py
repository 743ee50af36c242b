"""wcfollowup: post-purchase follow-ups for WooCommerce, run from outside WordPress."""

__version__ = "0.1.0"
