"""Instrument reference data: which symbols the lake knows, their market, tick, lot and contract size.

A row whose symbol is not listed here is quarantined (reason `unknown_symbol`); the CLI refuses it up front.
To add an instrument, add an `Instrument` to INSTRUMENTS (values from the exchange's exchangeInfo).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Instrument:
    symbol: str
    market: str  # spot / usdm / coinm
    base: str  # the asset whose on-chain metrics belong to it
    tick_size: float
    lot_size: float
    # coin-M: USD value of one contract (BTCUSD_PERP: 100). 1.0 for linear markets, where size is in base units.
    contract_size: float = 1.0

    @property
    def inverse(self) -> bool:
        return self.market == "coinm"


INSTRUMENTS: dict[str, Instrument] = {
    i.symbol: i
    for i in (
        Instrument("BTCUSDT", "usdm", "BTC", tick_size=0.1, lot_size=0.001),
        Instrument("ETHUSDT", "usdm", "ETH", tick_size=0.01, lot_size=0.001),
        Instrument("BTCUSD_PERP", "coinm", "BTC", tick_size=0.1, lot_size=1.0, contract_size=100.0),
        Instrument("ETHUSD_PERP", "coinm", "ETH", tick_size=0.01, lot_size=1.0, contract_size=10.0),
    )
}
# Spot books of the same names: tick and lot differ from the perpetuals.
SPOT_INSTRUMENTS: dict[str, Instrument] = {
    i.symbol: i
    for i in (
        Instrument("BTCUSDT", "spot", "BTC", tick_size=0.01, lot_size=0.00001),
        Instrument("ETHUSDT", "spot", "ETH", tick_size=0.01, lot_size=0.0001),
    )
}


def known_symbols() -> list[str]:
    return sorted(set(INSTRUMENTS) | set(SPOT_INSTRUMENTS))


def instrument(symbol: str, market: str = "usdm") -> Instrument:
    """The instrument for `symbol` on `market`; a clear error naming the fix when unknown."""
    table = SPOT_INSTRUMENTS if market == "spot" else INSTRUMENTS
    found = table.get(symbol.upper())
    if found is None or (market != "spot" and found.market != market):
        raise UnknownSymbolError(
            f"unknown symbol {symbol!r} on market {market!r}: known are {', '.join(sorted(table))}; "
            "add it to feature_store/instruments.py"
        )
    return found


class UnknownSymbolError(ValueError):
    pass
