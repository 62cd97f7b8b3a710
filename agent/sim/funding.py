"""Funding settlement: at each funding time a position pays (or receives) mark * size * rate.

A positive rate means longs pay shorts (perp_margin.md §5, B6). The payment comes out of the available balance
and, when that is not enough, out of the isolated position margin (which moves the liquidation price).
"""

from __future__ import annotations

from numba import njit


@njit(cache=True)
def funding_payment(position: float, mark: float, rate: float) -> float:
    """Amount the position pays (negative: receives)."""
    return position * mark * rate


@njit(cache=True)
def settle_funding(acct, rate: float, mark: float) -> float:
    """Apply one funding settlement to the account record; returns the amount paid."""
    a = acct[0]
    pay = funding_payment(a.position, mark, rate)
    if pay == 0.0:
        return 0.0
    if pay > 0.0:
        available = max(a.cash - a.reserved, 0.0)
        from_cash = min(pay, available)
        a.cash -= from_cash
        a.iso_wallet -= pay - from_cash
    else:
        a.cash -= pay
    a.funding_paid += pay
    return pay
