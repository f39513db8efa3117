"""The conferencing focus: conference state, admission rules and control (sans-I/O)."""
