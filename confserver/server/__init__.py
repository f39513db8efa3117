"""Twisted adapters and the server process around the pure SIP core."""
