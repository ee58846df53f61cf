"""Log levels and the aliases applications use for them."""

from __future__ import annotations

from enum import IntEnum


class Level(IntEnum):
    """Severity, ordered so that ``Level.WARN < Level.ERROR`` holds."""

    TRACE = 5
    DEBUG = 10
    INFO = 20
    WARN = 30
    ERROR = 40
    FATAL = 50

    @classmethod
    def parse(cls, value: str | int | None) -> Level:
        """Normalise a level name, alias or syslog/Python number; unknown text is INFO.

        Unknown values default to INFO rather than failing because a record with an
        odd level is still a log line worth archiving.
        """
        if value is None:
            return cls.INFO
        if isinstance(value, int) and not isinstance(value, bool):
            return _from_number(value)
        text = str(value).strip().upper()
        if text.isdigit():
            return _from_number(int(text))
        return _ALIASES.get(text, cls.INFO)

    @classmethod
    def from_name(cls, value: str | int) -> Level:
        """Like ``parse`` but for configuration: an unknown name is an error, not INFO.

        A typo in a minimum level would otherwise turn every INFO line into an alert.
        """
        text = str(value).strip().upper()
        if isinstance(value, int) or text.isdigit():
            return _from_number(int(text))
        if text not in _ALIASES:
            raise ValueError(f"unknown log level {value!r}; use one of {', '.join(m.name for m in cls)}")
        return _ALIASES[text]


def _from_number(number: int) -> Level:
    # Python logging numbers (10..50) and syslog severities (0..7) both appear in the wild.
    if number >= 10:
        for level in (Level.FATAL, Level.ERROR, Level.WARN, Level.INFO, Level.DEBUG):
            if number >= level.value:
                return level
        return Level.TRACE
    syslog = {
        0: Level.FATAL,
        1: Level.FATAL,
        2: Level.FATAL,
        3: Level.ERROR,
        4: Level.WARN,
        5: Level.INFO,
        6: Level.INFO,
        7: Level.DEBUG,
    }
    return syslog.get(number, Level.INFO)


_ALIASES: dict[str, Level] = {
    "TRACE": Level.TRACE,
    "TRC": Level.TRACE,
    "FINEST": Level.TRACE,
    "FINER": Level.TRACE,
    "DEBUG": Level.DEBUG,
    "DBG": Level.DEBUG,
    "FINE": Level.DEBUG,
    "VERBOSE": Level.DEBUG,
    "INFO": Level.INFO,
    "INF": Level.INFO,
    "INFORMATION": Level.INFO,
    "NOTICE": Level.INFO,
    "CONFIG": Level.INFO,
    "I": Level.INFO,
    "WARN": Level.WARN,
    "WARNING": Level.WARN,
    "WRN": Level.WARN,
    "W": Level.WARN,
    "ERROR": Level.ERROR,
    "ERR": Level.ERROR,
    "SEVERE": Level.ERROR,
    "E": Level.ERROR,
    "FATAL": Level.FATAL,
    "CRITICAL": Level.FATAL,
    "CRIT": Level.FATAL,
    "EMERG": Level.FATAL,
    "EMERGENCY": Level.FATAL,
    "ALERT": Level.FATAL,
    "PANIC": Level.FATAL,
    "DPANIC": Level.FATAL,
    "F": Level.FATAL,
}
