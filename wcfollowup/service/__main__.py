"""`python -m wcfollowup.service`: how the systemd unit starts the daemon."""

from wcfollowup.service.systemd.systemd import main

if __name__ == "__main__":
    raise SystemExit(main())
