"""The demo stack: every process of the system on one machine, on the embedded default (`python3 dev.py demo`)."""
