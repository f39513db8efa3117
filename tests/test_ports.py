"""The tests' fixed port blocks (tests/ports.py) never overlap."""

from __future__ import annotations

import itertools
import socket

import pytest

from .ports import BLOCKS, SHARED_DRAIN, free_even_run, server_range


def test_no_two_port_blocks_overlap_and_all_lie_below_the_ephemeral_range() -> None:
    assert len(BLOCKS) > 10
    for (name_a, a), (name_b, b) in itertools.combinations(BLOCKS.items(), 2):
        assert a.stop <= b.start or b.stop <= a.start, (name_a, name_b)
    assert all(block.start > 0 and block.stop <= 32768 for block in BLOCKS.values())


def test_a_run_of_free_ports_skips_a_taken_one() -> None:
    first = free_even_run(SHARED_DRAIN, 4)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as holder:
        holder.bind(("127.0.0.1", first + 3))  # the last of the run
        again = free_even_run(SHARED_DRAIN, 4)
    assert again % 2 == 0 and not again <= first + 3 < again + 4
    assert server_range(range(5, 10)) == "5-9"
    with pytest.raises(ValueError, match="shorter than 4"):
        free_even_run(range(10, 12), 4)
