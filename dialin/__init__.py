"""Conferencing attendant (dial-in): access numbers, prompts, DTMF entry."""
