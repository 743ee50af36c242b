"""The daemon as a service: wiring, systemd notify, logs."""
