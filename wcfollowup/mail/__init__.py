"""The mail adapter: the only code that talks to SendGrid."""
