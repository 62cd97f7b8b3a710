"""Trading fees: maker/taker rates on traded notional (Binance USD-M VIP 0 defaults: 0.02 % / 0.05 %)."""

from __future__ import annotations

from dataclasses import dataclass

from numba import njit


@dataclass(frozen=True)
class FeeConfig:
    """Rates are fractions of notional; a negative maker rate is a rebate."""

    maker: float = 0.0002
    taker: float = 0.0005


@njit(cache=True)
def trade_fee(px: float, qty: float, maker: bool, maker_rate: float, taker_rate: float) -> float:
    return px * qty * (maker_rate if maker else taker_rate)
