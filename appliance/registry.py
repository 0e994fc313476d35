"""Driver discovery through entry points (``appliance.pbx_drivers``, ``appliance.pms_drivers``).

A third-party package adds a driver by declaring an entry point that names its ``DriverSpec``; it is
validated when loaded so a broken driver is reported by name instead of failing later on a link.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any, Iterable

from appliance.drivers import TRANSPORTS, DriverSpec
from appliance.schema import Problems, build

GROUPS = {"pbx": "appliance.pbx_drivers", "pms": "appliance.pms_drivers"}


class DriverRegistry:
    def __init__(self, specs: Iterable[DriverSpec] = ()) -> None:
        self._specs: dict[tuple[str, str], DriverSpec] = {}
        # Drivers whose entry point failed to load or validate: reported when a link asks for them, so one
        # broken plug-in cannot stop links that do not use it.
        self.broken: dict[tuple[str, str], str] = {}
        for spec in specs:
            self.add(spec)

    def add(self, spec: DriverSpec) -> None:
        problems = validate_spec(spec)
        if problems:
            raise ValueError(f"driver {spec.name!r} is invalid: {'; '.join(problems)}")
        self._specs[(spec.kind, spec.name)] = spec

    def get(self, kind: str, name: str) -> DriverSpec:
        try:
            return self._specs[(kind, name)]
        except KeyError:
            raise KeyError(f"no {kind} driver named {name!r}; known: {', '.join(self.names(kind))}") from None

    def names(self, kind: str) -> list[str]:
        return sorted(name for k, name in self._specs if k == kind)

    def check_link(self, link: Any, kind: str, path: str, problems: Problems) -> Any:
        """Validate a link's driver, transport and options; return the options dataclass (or None)."""
        if (kind, link.driver) in self.broken:
            problems.append((f"{path}.driver", f"{kind} driver {link.driver!r} is installed but failed to load: "
                                               f"{self.broken[(kind, link.driver)]}"))
            return None
        if (kind, link.driver) not in self._specs:
            problems.append((f"{path}.driver", f"unknown {kind} driver {link.driver!r}; "
                                               f"known: {', '.join(self.names(kind))}"))
            return None
        spec = self._specs[(kind, link.driver)]
        if link.transport not in spec.transports:
            problems.append((f"{path}.transport", f"driver {spec.name} does not run over {link.transport}; "
                                                  f"use one of {', '.join(sorted(spec.transports))}"))
        options = build(spec.options, link.options, f"{path}.options", problems)
        # Options that only some transports can take (FIAS TLS needs tcp-client) say so themselves.
        check = getattr(options, "transport_problems", None)
        if check is not None:
            problems += [(f"{path}.options.{key}", message) for key, message in check(link.transport)]
        return options

    def options(self, kind: str, name: str, data: dict[str, Any]) -> Any:
        """Options for a driver from a plain dict (the CLI's ``--option KEY=VALUE``); raises ConfigError."""
        from appliance.errors import ConfigError

        problems: Problems = []
        result = build(self.get(kind, name).options, data, "option", problems)
        if problems:
            raise ConfigError(problems)
        return result


def validate_spec(spec: Any) -> list[str]:
    problems = []
    if not isinstance(spec, DriverSpec):
        return [f"entry point must name a DriverSpec, got {type(spec).__name__}"]
    if spec.kind not in GROUPS:
        problems.append(f"kind {spec.kind!r} is neither pbx nor pms")
    if not spec.transports or not spec.transports <= TRANSPORTS:
        problems.append(f"transports {sorted(spec.transports)} must be a non-empty subset of {sorted(TRANSPORTS)}")
    if spec.kind == "pbx" and spec.parse_record is None:
        problems.append("a pbx driver needs parse_record")
    try:
        spec.options()
    except TypeError as exc:
        problems.append(f"options class must build with no arguments (all fields defaulted): {exc}")
    return problems


_DEFAULT: DriverRegistry | None = None


def default_registry() -> DriverRegistry:
    """Every installed driver, loaded once per process."""
    global _DEFAULT
    if _DEFAULT is None:
        registry = DriverRegistry()
        for kind, group in GROUPS.items():
            for point in entry_points(group=group):
                try:
                    spec = point.load()
                    if getattr(spec, "kind", kind) != kind:
                        raise ValueError(f"entry point in {group} declares kind {spec.kind!r}")
                    registry.add(spec)
                except Exception as exc:  # a plug-in's import error must not stop the other drivers
                    registry.broken[(kind, point.name)] = f"{type(exc).__name__}: {exc}"
        _DEFAULT = registry
    return _DEFAULT
