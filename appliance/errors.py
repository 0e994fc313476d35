"""The two error families of the appliance (ARCHITECTURE.md, style rule 7).

``ConfigError`` stops start-up with a message that names the file, the key and what is wrong.
``ProtocolError`` means a peer misbehaved: the link logs it, drops the connection and reconnects.
"""

from __future__ import annotations


class ConfigError(Exception):
    """One or more configuration problems; ``problems`` holds ``(key_path, message)`` pairs."""

    def __init__(self, problems: list[tuple[str, str]], source: str = "") -> None:
        self.problems = list(problems)
        self.source = source
        super().__init__(self.render())

    def render(self) -> str:
        where = f"{self.source}: " if self.source else ""
        return "\n".join(f"{where}{path or '<top>'}: {message}" for path, message in self.problems)


class ProtocolError(Exception):
    """The peer sent something the protocol does not allow in the current state."""
