"""The pure core: order snapshots, timing and planning. No I/O lives here."""
