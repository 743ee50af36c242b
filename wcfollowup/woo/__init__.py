"""The WooCommerce adapter: the only code that talks to the store."""
