"""Perpetual accounting, USD-M linear, one-way mode, isolated margin.

Initial margin = notional / leverage, moved from the wallet into the isolated position margin (WB) as a position
opens and released pro rata as it closes. Maintenance margin comes from the notional bracket:
MM = notional * MMR - cum. The position is liquidated when, at the mark price, WB + unrealized PnL < MM, which
is the mark crossing Binance's isolated liquidation price
    LP = (WB - TMM1 + UPNL1 + cum - side*Q*EP) / (Q*MMR - side*Q),  TMM1 = UPNL1 = 0 when isolated
(perp_margin.md §1). Liquidation closes the position at the mark, charges the clearance fee on the liquidated
notional, returns what is left of the isolated margin (if anything) and leaves any shortfall to the insurance fund.
Tiers are Binance's BTCUSDT / ETHUSDT brackets as of 2024-10-24 (perp_margin.md §2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numba import njit

# (notional floor, notional cap, maintenance margin rate, max leverage, maintenance amount cum)
_BTCUSDT_TIERS = (
    (0.0, 50e3, 0.004, 125, 0.0),
    (50e3, 600e3, 0.005, 100, 50.0),
    (600e3, 3e6, 0.0065, 75, 950.0),
    (3e6, 12e6, 0.01, 50, 11_450.0),
    (12e6, 70e6, 0.02, 25, 131_450.0),
    (70e6, 100e6, 0.025, 20, 481_450.0),
    (100e6, 230e6, 0.05, 10, 2_981_450.0),
    (230e6, 480e6, 0.10, 5, 14_481_450.0),
    (480e6, 600e6, 0.125, 4, 26_481_450.0),
    (600e6, 800e6, 0.15, 3, 41_481_450.0),
    (800e6, 1.2e9, 0.25, 2, 121_481_450.0),
    (1.2e9, 1.8e9, 0.50, 1, 421_481_450.0),
)
_ETHUSDT_TIERS = (
    (0.0, 50e3, 0.004, 125, 0.0),
    (50e3, 600e3, 0.005, 100, 50.0),
    (600e3, 3e6, 0.0065, 75, 950.0),
    (3e6, 12e6, 0.01, 50, 11_450.0),
    (12e6, 50e6, 0.02, 25, 131_450.0),
    (50e6, 65e6, 0.025, 20, 381_450.0),
    (65e6, 150e6, 0.05, 10, 2_006_450.0),
    (150e6, 320e6, 0.10, 5, 9_506_450.0),
    (320e6, 400e6, 0.125, 4, 17_506_450.0),
    (400e6, 530e6, 0.15, 3, 27_506_450.0),
    (530e6, 800e6, 0.25, 2, 80_506_450.0),
    (800e6, 1.2e9, 0.50, 1, 280_506_450.0),
)
TIERS = {"BTCUSDT": _BTCUSDT_TIERS, "ETHUSDT": _ETHUSDT_TIERS}
# tier array columns
T_FLOOR, T_CAP, T_MMR, T_MAXLEV, T_CUM = range(5)


def tiers_for(symbol: str) -> np.ndarray:
    """The bracket table of `symbol` as an array with columns floor, cap, mmr, max leverage, cum."""
    try:
        return np.array(TIERS[symbol.upper()], dtype=np.float64)
    except KeyError:
        raise ValueError(
            f"no maintenance brackets for {symbol!r}; known: {', '.join(TIERS)}. Pass MarginConfig(tiers=...) "
            "with rows (floor, cap, mmr, max_leverage, cum) from GET /fapi/v1/leverageBracket"
        ) from None


@dataclass(frozen=True)
class MarginConfig:
    """`tiers`: None = the symbol's table in TIERS. `liquidation_fee_rate`: clearance fee on the liquidated
    notional (exchangeInfo `liquidationFee`; 0.0125 for BTCUSDT/ETHUSDT in 2024)."""

    initial_cash: float = 10_000.0
    leverage: float = 10.0
    liquidation_fee_rate: float = 0.0125
    tiers: tuple[tuple[float, float, float, float, float], ...] | None = field(default=None)

    def tier_array(self, symbol: str) -> np.ndarray:
        arr = np.array(self.tiers, dtype=np.float64) if self.tiers is not None else tiers_for(symbol)
        if arr.ndim != 2 or arr.shape[1] != 5:
            raise ValueError("MarginConfig.tiers rows must be (floor, cap, mmr, max_leverage, cum)")
        return arr


@njit(cache=True)
def bracket(tiers: np.ndarray, notional: float) -> int:
    """Index of the bracket holding `notional` (the last one beyond the table)."""
    for i in range(tiers.shape[0]):
        if notional < tiers[i, T_CAP]:
            return i
    return tiers.shape[0] - 1


@njit(cache=True)
def maintenance_margin(tiers: np.ndarray, notional: float) -> float:
    b = bracket(tiers, notional)
    return notional * tiers[b, T_MMR] - tiers[b, T_CUM]


def liquidation_price(
    side: int,
    qty: float,
    entry_px: float,
    wallet_balance: float,
    tiers: np.ndarray,
    other_maintenance: float = 0.0,
    other_upnl: float = 0.0,
) -> float:
    """Binance's USD-M liquidation price (one-way mode). Isolated: other_* = 0 and WB = the position margin.

    The bracket is the one holding the notional at the liquidation price: start from the entry notional and
    recompute while the result lands in another bracket (B1).
    """
    if qty <= 0:
        raise ValueError(f"liquidation_price: qty must be positive, got {qty}")
    b = int(bracket(tiers, qty * entry_px))
    lp = math.nan
    for _ in range(tiers.shape[0] + 1):
        mmr, cum = tiers[b, T_MMR], tiers[b, T_CUM]
        lp = (wallet_balance - other_maintenance + other_upnl + cum - side * qty * entry_px) / (
            qty * mmr - side * qty
        )
        nb = int(bracket(tiers, qty * max(lp, 0.0)))
        if nb == b:
            break
        b = nb
    return max(lp, 0.0)


@njit(cache=True)
def _open(a, side: int, qty: float, px: float, leverage: float) -> None:
    q0 = abs(a.position)
    a.entry_px = (q0 * a.entry_px + qty * px) / (q0 + qty)
    a.position += side * qty
    im = qty * px / leverage
    a.cash -= im
    a.iso_wallet += im


@njit(cache=True)
def apply_fill(acct, side: int, qty: float, px: float, fee: float, leverage: float, eps: float) -> None:
    """Book a fill: close against the position first (realizing PnL, releasing margin pro rata), open the rest."""
    a = acct[0]
    a.cash -= fee
    a.fees_paid += fee
    a.traded_qty += qty
    a.n_fills += 1
    pos = a.position
    if pos != 0.0 and (pos > 0.0) != (side > 0):
        q0 = abs(pos)
        closed = min(qty, q0)
        sgn = 1.0 if pos > 0.0 else -1.0
        pnl = (px - a.entry_px) * closed * sgn
        release = a.iso_wallet * closed / q0
        a.realized_pnl += pnl
        a.iso_wallet -= release
        a.cash += release + pnl
        a.position = pos + side * closed
        if abs(a.position) <= eps:
            a.position = 0.0
            a.cash += a.iso_wallet  # rounding leftovers and funding adjustments go back to the wallet
            a.iso_wallet = 0.0
            a.entry_px = 0.0
        qty -= closed
        if qty <= eps:
            return
    _open(a, side, qty, px, leverage)


@njit(cache=True)
def unrealized_pnl(acct, mark: float) -> float:
    a = acct[0]
    if a.position == 0.0:
        return 0.0
    return (mark - a.entry_px) * a.position


@njit(cache=True)
def should_liquidate(acct, tiers: np.ndarray, mark: float) -> bool:
    a = acct[0]
    if a.position == 0.0:
        return False
    notional = abs(a.position) * mark
    return a.iso_wallet + unrealized_pnl(acct, mark) < maintenance_margin(tiers, notional)


@njit(cache=True)
def liquidate(acct, mark: float, fee_rate: float) -> tuple[float, float, float]:
    """Close the whole position at the mark; returns (closed signed qty, clearance fee, insurance shortfall)."""
    a = acct[0]
    pos = a.position
    q = abs(pos)
    pnl = (mark - a.entry_px) * pos
    fee = q * mark * fee_rate
    left = a.iso_wallet + pnl - fee
    shortfall = 0.0
    if left < 0.0:
        shortfall = -left
        left = 0.0
    a.realized_pnl += pnl
    a.liq_fees_paid += fee
    a.insurance_covered += shortfall
    a.cash += left
    a.iso_wallet = 0.0
    a.position = 0.0
    a.entry_px = 0.0
    a.liquidated += 1
    return pos, fee, shortfall
