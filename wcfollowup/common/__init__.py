"""Small rules shared by the config and the core alike: email addresses, and keeping secrets
out of anything a person or a log file reads. Pure: no I/O, nothing else of wcfollowup."""
