"""Where a call's RTP ports come from: a range taken at random, or one shared port."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Protocol


class RtpPorts(Protocol):
    """Where a call's RTP port comes from."""

    shared: bool  # every call gets the same port (no second port for video)

    def allocate(self, privileged: bool = True) -> int | None: ...

    def release(self, port: int) -> None: ...


class PortPool:
    """Even RTP ports from a configured range; RTCP takes the odd one above.

    Ports are taken at random, so nobody can tell which port the next call gets
    (and aim packets at it before its peer does). The last ``reserve`` of the
    range is kept for privileged calls (signed-in users, gateways, the calls we
    place): a flood of strangers' calls cannot take every port.

    ``probe`` says whether a port pair can be bound right now: a port some
    other program holds (a client's ephemeral port inside a misconfigured
    range, say) is passed over and tried again later, instead of being named
    in an SDP offer that cannot be honoured when the answer comes.
    """

    shared = False

    def __init__(self, first: int, last: int, probe: Callable[[int], bool] | None = None,
                 reserve: float = 0.0) -> None:
        start = first + (first % 2)
        self._free = list(range(start, last, 2))
        self._reserved = int(len(self._free) * reserve)
        self._used: set[int] = set()
        self._probe = probe

    def allocate(self, privileged: bool = True) -> int | None:
        floor = 0 if privileged else self._reserved
        busy: list[int] = []  # held by some other program now: back in the pool after
        port: int | None = None
        while len(self._free) > floor:
            index = secrets.randbelow(len(self._free))
            candidate = self._free[index]
            self._free[index] = self._free[-1]
            self._free.pop()
            if self._probe is not None and not self._probe(candidate):
                busy.append(candidate)
                floor = max(0, floor - 1)  # a busy port still counts as free for the floor
                continue
            port = candidate
            self._used.add(port)
            break
        self._free += busy
        return port

    def release(self, port: int) -> None:
        if port in self._used:
            self._used.discard(port)
            self._free.append(port)

    @property
    def in_use(self) -> int:
        return len(self._used)


class SharedPortPool:
    """Every call gets the same port: the media engine demultiplexes (``[media] shared_port``)."""

    shared = True

    def __init__(self, port: int) -> None:
        self.port = port
        self.in_use = 0

    def allocate(self, privileged: bool = True) -> int | None:
        self.in_use += 1
        return self.port

    def release(self, port: int) -> None:
        self.in_use = max(0, self.in_use - 1)
