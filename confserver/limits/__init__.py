"""Limits on what an outsider can drive, sans-I/O: each takes a key and ``now``.

- ``buckets``: request rates per key (token buckets), Kamailio pike's job.
- ``backoff``: failed attempts per key with exponential back-off (logins).
- ``window``: failed attempts per key within a sliding window (meeting IDs, passcodes,
  PINs).

Every table is bounded: past ``max_keys`` the least recently seen keys are forgotten,
so a flood from forged addresses costs memory only up to that bound.
"""
