"""Input and output safety filters behind one pluggable interface."""

from bot.safety.base import SafetyChain, SafetyContext, SafetyFilter, Verdict
from bot.safety.filters import (
    INJECTION_REPLY,
    CleanInput,
    InjectionGuard,
    OutputGuard,
    RedactPII,
    default_filters,
)

__all__ = ["INJECTION_REPLY", "CleanInput", "InjectionGuard", "OutputGuard", "RedactPII",
           "SafetyChain", "SafetyContext", "SafetyFilter", "Verdict", "default_filters"]
