"""Trading fees: maker/taker rates on traded notional (Binance USD-M VIP 0 defaults: 0.02 % / 0.05 %).

FEE_TIERS names the schedules experiments choose between (rates as fractions of notional; negative = rebate):
  vip0  Binance USD-M regular user, VIP 0: maker 0.0200 %, taker 0.0500 %.
  vip9  Binance USD-M VIP 9 (the top volume tier): maker 0.0000 %, taker 0.0170 %.
  mm    Binance USD-M Futures Liquidity Provider (market maker) programme, top tier on USDT-M pairs: maker rebate
        -0.0050 % (tiers 1-5 pay -0.001 % .. -0.005 %, Binance announcement of the programme upgrade, 2023-04);
        takers pay the VIP level's fee, here VIP 9's 0.0170 %.
  none  no fees (isolates what a policy earns from the market alone).
"""

from __future__ import annotations

from dataclasses import dataclass

from numba import njit


@dataclass(frozen=True)
class FeeConfig:
    """Rates are fractions of notional; a negative maker rate is a rebate."""

    maker: float = 0.0002
    taker: float = 0.0005


FEE_TIERS: dict[str, FeeConfig] = {
    "vip0": FeeConfig(maker=0.0002, taker=0.0005),
    "vip9": FeeConfig(maker=0.0, taker=0.00017),
    "mm": FeeConfig(maker=-0.00005, taker=0.00017),
    "none": FeeConfig(maker=0.0, taker=0.0),
}


def fee_tier(name: str) -> FeeConfig:
    """The FeeConfig of a named tier (FEE_TIERS)."""
    try:
        return FEE_TIERS[name]
    except KeyError:
        raise ValueError(f"unknown fee tier {name!r}; choose one of {sorted(FEE_TIERS)}") from None


@njit(cache=True)
def trade_fee(px: float, qty: float, maker: bool, maker_rate: float, taker_rate: float) -> float:
    return px * qty * (maker_rate if maker else taker_rate)
