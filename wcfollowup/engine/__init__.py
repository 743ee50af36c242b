"""The engine wires core and adapters: poll, enrol, plan, store; dispatch, act, log."""
