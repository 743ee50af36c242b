"""Emails from Jinja2 templates, and the check that renders them all."""
