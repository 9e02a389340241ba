"""`get_logger()`: a bound logger (bind/new/unbind, structlog's interface) on the fast path.

Each level method is made by `_level_method` from the contract's level table: the minimum-level
check comes before any other work, and a call without positional args or bound context goes
straight to `emit` with the caller's keyword dict (no copy).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from collector.contract.levels import (
    CRITICAL,
    DEBUG,
    ERROR,
    INFO,
    LEVEL_NUMBERS,
    STDLIB_NAMES,
    WARNING,
    normalize_level,
)
from collector.record import format_message
from collector.state import STATE, emit

LevelMethod = Callable[..., None]

# Compiled from source, as dataclasses and namedtuple make their methods: the level and its number
# are constants in the bytecode, so a call costs what a hand-written method does (a closure would
# add cell loads to every call, filtered ones included).
_METHOD = """
def {level}(self, event="", *args, **kw):
    if STATE.min_level <= {number}:
        if args or self._context:
            self._log("{level}", event, args, kw)
        else:
            emit(self._logger, "{level}", event, kw)
"""


def _level_method(level: str) -> LevelMethod:
    source = _METHOD.format(level=level, number=LEVEL_NUMBERS[level])
    made: dict[str, LevelMethod] = {}
    exec(compile(source, f"<collector.logger.Logger.{level}>", "exec"), globals(), made)
    method = made[level]
    method.__qualname__ = f"Logger.{level}"
    method.__doc__ = f"Log `event` at {level}; keyword arguments become fields (labels)."
    return method


class Logger:
    """A logger name and its bound context; immutable (bind/new/unbind return new loggers)."""

    __slots__ = ("_context", "_logger")

    def __init__(self, name: str, context: dict[str, Any] | None = None) -> None:
        self._logger = name
        self._context: dict[str, Any] = context or {}

    def __repr__(self) -> str:
        return f"<Logger {self._logger!r} context={self._context!r}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Logger) and (self._logger, self._context) == (other._logger, other._context)

    __hash__ = None  # type: ignore[assignment]  # equal by value, and the context is mutable

    # ------------------------------------------------------------------ context
    def bind(self, **values: Any) -> Logger:
        """A logger whose records carry `values` too (a call's own fields win)."""
        return Logger(self._logger, {**self._context, **values})

    def unbind(self, *keys: str) -> Logger:
        """Without `keys`; KeyError when one is not bound (as in structlog)."""
        context = dict(self._context)
        for key in keys:
            del context[key]
        return Logger(self._logger, context)

    def try_unbind(self, *keys: str) -> Logger:
        return Logger(self._logger, {k: v for k, v in self._context.items() if k not in keys})

    def new(self, **values: Any) -> Logger:
        """The bound context replaced by `values`."""
        return Logger(self._logger, values)

    # ------------------------------------------------------------------ levels
    def _log(self, level: str, event: Any, args: tuple[Any, ...], kw: dict[str, Any]) -> None:
        if args:
            event = format_message(event, args)
        if self._context:
            kw = {**self._context, **kw}
        emit(self._logger, level, event, kw)

    debug = _level_method(DEBUG)
    info = _level_method(INFO)
    warning = warn = _level_method(WARNING)
    error = _level_method(ERROR)
    critical = fatal = _level_method(CRITICAL)

    def exception(self, event: Any = "", *args: Any, **kw: Any) -> None:
        """An error record with the exception being handled (`error.*` fields)."""
        if STATE.min_level <= LEVEL_NUMBERS[ERROR]:
            kw.setdefault("exc_info", True)
            self._log(ERROR, event, args, kw)

    def log(self, level: int | str, event: Any = "", *args: Any, **kw: Any) -> None:
        """At a level given by name (any alias the contract knows) or stdlib number."""
        if isinstance(level, str):
            name = normalize_level(level) or INFO
            number = LEVEL_NUMBERS[name]
        elif isinstance(level, int):
            number = level
            name = STDLIB_NAMES.get(number, INFO)
        else:  # no level a caller passes may make the call raise
            name = INFO
            number = LEVEL_NUMBERS[INFO]
        if STATE.min_level <= number:
            self._log(name, event, args, kw)


def get_logger(name: str | None = None, **initial: Any) -> Logger:
    """A logger for `name` (usually `__name__`). Safe to call before configure()."""
    return Logger(name or "root", initial)
