"""Exceptions raised by tickerterm.

    TickertermError          base of everything below
    ├── ConfigError          bad input: unknown venue, product or channel, malformed option
    ├── CredentialsError     a private channel without credentials, or unusable ones (names the variable)
    └── FrameError           a frame from the venue that cannot be understood (counted, survived)

``str()`` of each is one line meant for the user, and never contains a secret.
"""

from __future__ import annotations


class TickertermError(Exception):
    """Base class for tickerterm's own errors."""


class ConfigError(TickertermError):
    """The request cannot be carried out as given (unknown venue, product, channel, bad option)."""


class CredentialsError(ConfigError):
    """Credentials are missing or unusable; the message names the variable to set."""


class FrameError(TickertermError):
    """A frame from the venue is malformed; the stream worker counts it and carries on."""


def no_debug(record: object) -> bool:
    """A logging filter that drops DEBUG records: websockets logs whole frames (JWTs) and URLs (API
    keys) at DEBUG, so its loggers never pass those on, whatever the log level."""
    return getattr(record, "levelno", 0) > 10
