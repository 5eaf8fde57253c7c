"""What the backend relays from the exchange: a pure classification of its error text.

The real backend answers every exchange failure with a 500 whose message is its HTTP
client's text (../shared/backend-contract.md), e.g.
``400, message='Bad Request', url=URL('https://api.binance.com/api/v3/klines?symbol=BTCUSTD&...')``.
Some of those can never change by retrying (an unknown symbol); a rate limit or a ban
stops the pass (coin_sync.sync.attempt: our retries must not keep a ban alive); everything
else is transient.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class Verdict(StrEnum):
    REJECTED = "rejected"  # permanent: the exchange refuses this symbol; retrying cannot help
    RATE_LIMITED = "rate_limited"  # 429 / Binance -1003: too much weight
    BANNED = "banned"  # 418: the IP is banned for a while (2 min to 3 days)
    TRANSIENT = "transient"  # anything else: exchange 5xx, network, database


@dataclass(frozen=True)
class Classification:
    verdict: Verdict
    reason: str = ""  # the exchange's own words, e.g. "400 Bad Request" or "-1121 Invalid symbol"

    @property
    def permanent(self) -> bool:
        return self.verdict is Verdict.REJECTED


# The HTTP client's text: `400, message='Bad Request', url=...` (aiohttp's
# ClientResponseError). The message is quoted with ' or, when it holds a ', with ".
_HTTP_TEXT = re.compile(r"""(?<![\d.-])([1-5]\d\d), message=(?P<q>['"])(?P<message>.*?)(?P=q)""")
# A Binance error body, relayed raw or as text: {"code":-1121,"msg":"Invalid symbol."}
_BINANCE_CODE = re.compile(r"""["']?code["']?\s*[:=]\s*(-\d{4})""")
_BINANCE_MSG = re.compile(r"""["']?msg["']?\s*[:=]\s*["']([^"']*)["']""")
_BARE_CODE = re.compile(r"(?<![\w.])(-1003|-1121)(?!\d)")

_PERMANENT_STATUSES = {400: Verdict.REJECTED}
_OVERLOAD_STATUSES = {429: Verdict.RATE_LIMITED, 418: Verdict.BANNED}
_CODES = {"-1121": Verdict.REJECTED, "-1003": Verdict.RATE_LIMITED}


def classify(message: str) -> Classification:
    """Classify the backend's relayed error text (the message of its 500 answer)."""
    code_match = _BINANCE_CODE.search(message) or _BARE_CODE.search(message)
    if code_match and code_match.group(1) in _CODES:
        code = code_match.group(1)
        msg = _BINANCE_MSG.search(message)
        reason = f"{code} {msg.group(1).rstrip('.')}" if msg else code
        return Classification(_CODES[code], reason)
    if "invalid symbol" in message.lower():
        return Classification(Verdict.REJECTED, "Invalid symbol")
    http = _HTTP_TEXT.search(message)
    if http:
        status = int(http.group(1))
        reason = f"{status} {http.group('message')}"
        verdict = _PERMANENT_STATUSES.get(status) or _OVERLOAD_STATUSES.get(status)
        if verdict is not None:
            return Classification(verdict, reason)
        return Classification(Verdict.TRANSIENT, reason)
    return Classification(Verdict.TRANSIENT)
