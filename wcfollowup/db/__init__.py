"""State storage: SQLite (WAL) by default, PostgreSQL for scale-out."""
