"""The small error tree: what a member may be told, and what is only logged."""

from __future__ import annotations


class ShopkeepError(Exception):
    """Base of every error the core raises on purpose."""


class UserFacingError(ShopkeepError):
    """Carries a message fit to show the member who caused it, as is."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UserInputError(UserFacingError):
    """The member typed something we cannot use; the message says how to fix it."""


class UnknownCommand(UserInputError):
    pass


class BadArgument(UserInputError):
    pass


class MissingPermission(UserFacingError):
    pass


class RateLimited(UserFacingError):
    pass


class StorageUnavailable(UserFacingError):
    """Redis cannot be reached; said plainly to the member instead of crashing."""

    def __init__(self, message: str = "I can't reach my memory right now — please try again "
                 "in a minute.") -> None:
        super().__init__(message)


class ServiceBusy(UserFacingError):
    def __init__(self, message: str = "I'm answering a lot of people right now — please try "
                 "again shortly.") -> None:
        super().__init__(message)


class ConfigError(ShopkeepError):
    """A setting is wrong; the message names it and what is allowed."""
