"""atheris target: the FIAS record decoder and the FIAS link (Oracle FIAS 2.20.23 record syntax).

Any input must give a ``FiasRecord`` or ``MalformedRecordError`` from ``decode``, and events or a
``ProtocolError`` from the link fed the input as a framed record after the LS/LA handshake.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

with atheris.instrument_imports():
    from appliance.errors import ProtocolError
    from appliance.framing import frame
    from pms_drivers.fias.link import FiasLink, FiasOptions
    from pms_drivers.fias.records import decode, encode

NOW = 1_741_947_300.0
HANDSHAKE = frame(b"LS|DA250314|TI101500|") + frame(b"LA|DA250314|TI101500|")


def test_one_input(data: bytes) -> None:
    try:
        record = decode(data)
    except ProtocolError:
        record = None
    if record is not None:
        decode(encode(record))  # what decodes re-encodes into something that decodes
    link = FiasLink(FiasOptions())
    try:
        link.connection_made(NOW)
        link.receive_data(HANDSHAKE, NOW)
        link.data_to_send()
        link.receive_data(frame(data) + data, NOW + 1)
        link.data_to_send()
        deadline = link.deadline()
        if deadline is not None:
            link.handle_timeout(deadline)
        link.connection_lost(NOW + 2)
    except ProtocolError:
        pass


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
