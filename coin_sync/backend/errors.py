"""The errors of one backend request, classified where they are raised and never changed
afterwards: what went wrong (kind), the HTTP status, what the server asked us to wait,
and whether the backend may still be working on it."""

from __future__ import annotations

from enum import StrEnum

from coin_sync.backend.exchange import Classification

# 429 from a gateway, 500 when Binance or MongoDB failed, 502-504 from a proxy.
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
AMBIGUOUS_NOTE = " (el backend puede seguir sincronizándolo: no se reintenta en esta pasada)"


class ErrorKind(StrEnum):
    CONNECTION = "connection"  # never reached the backend (refused, connect timeout, DNS)
    TIMEOUT = "timeout"  # sent, but no answer in time
    HTTP = "http"  # an answer with a non-200 status
    BODY = "body"  # a 200 whose body is not the contract's JSON
    REJECTED = "rejected"  # a deliberate success=false: the same answer again


class BackendError(Exception):
    """One failed request to the backend."""

    def __init__(
        self,
        message: str,
        kind: ErrorKind,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        may_still_run: bool = False,
        exchange: Classification | None = None,
    ) -> None:
        # The request may have reached the backend, which may still be working on it:
        # re-sending a sync then would run the same symbol twice (duplicate klines).
        super().__init__(message + (AMBIGUOUS_NOTE if may_still_run else ""))
        self.kind = kind
        self.status = status
        self.retry_after = retry_after
        self.may_still_run = may_still_run
        # What the backend relayed from the exchange (its 500s), classified at once.
        self.exchange = exchange

    @property
    def rejected_by_exchange(self) -> bool:
        """The exchange refused the symbol for good (unknown symbol): never retried."""
        return self.exchange is not None and self.exchange.permanent

    @property
    def retryable(self) -> bool:
        if self.may_still_run or self.kind is ErrorKind.REJECTED or self.rejected_by_exchange:
            return False
        if self.kind is ErrorKind.HTTP:
            return self.status in RETRYABLE_STATUSES
        return True

    @property
    def means_backend_down(self) -> bool:
        """Worth asking /health whether the backend itself is gone."""
        if self.rejected_by_exchange:
            return False  # the backend answered, for the exchange
        return self.kind in (ErrorKind.CONNECTION, ErrorKind.TIMEOUT) or (
            self.status is not None and self.status >= 500
        )
