"""The owner's tools behind the CLI: each module answers one command, the CLI only prints.

They read and write the state database with SQLAlchemy Core and talk to the store through
``WooGateway``; time is always an argument, so tests drive them on a fake clock.
"""
