"""Byte mutations for the fuzz tests: a real record with a few bytes changed finds more than random
bytes, because it gets past the first checks (field counts, column widths) into the parsing proper."""

from __future__ import annotations

from hypothesis import strategies as st

INTERESTING = [b"0", b"9", b"-", b"+", b" ", b",", b"|", b":", b"/", b".", b"\x00", b"\xff", b"\xe9", b"\r",
               b"\n", b"\x02", b"\x03", b"99999999999999999999", b"-1", b"00", b"24", b"60", b"31", b"13",
               b"2038", b"9999", b"0000", b"1e9", b"nan", b"\t", b'"', b"''"]


@st.composite
def mutated(draw, seeds: list[bytes], max_mutations: int = 4) -> bytes:
    data = bytearray(draw(st.sampled_from(seeds)) if seeds else b"")
    for _ in range(draw(st.integers(min_value=0, max_value=max_mutations))):
        kind = draw(st.sampled_from(["replace", "insert", "delete", "truncate", "duplicate", "interesting"]))
        at = draw(st.integers(min_value=0, max_value=len(data))) if data else 0
        if kind == "replace" and data:
            data[min(at, len(data) - 1)] = draw(st.integers(min_value=0, max_value=255))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete" and data:
            del data[at:at + draw(st.integers(min_value=1, max_value=8))]
        elif kind == "truncate":
            del data[at:]
        elif kind == "duplicate" and data:
            end = draw(st.integers(min_value=at, max_value=len(data)))
            data[end:end] = data[at:end]
        elif kind == "interesting":
            token = draw(st.sampled_from(INTERESTING))
            data[at:at + len(token)] = token
    return bytes(data)
