"""Record layouts and codes shared by the compiled replay engine: orders, requests in flight, responses, fills.

Everything the compiled loop touches lives in numpy structured arrays with these dtypes, so the same state can
be driven from Python (`engine.Simulator`) and from compiled batch loops (`quoter.run_touch_quoter`).
"""

from __future__ import annotations

import numpy as np

BUY = 1
SELL = -1

# order kinds
LIMIT = 0
MARKET = 1

# time in force
GTC = 0
POST_ONLY = 1  # Binance GTX: rejected if it would take liquidity on arrival
IOC = 2

# order status, on the exchange (`status`) and as the agent knows it (`local_status`)
FREE = 0  # slot unused
PENDING = 1  # sent, not yet accepted by the exchange
LIVE = 2  # resting in the book
FILLED = 3
CANCELED = 4  # by request, IOC/market remainder, or liquidation
REJECTED = 5  # never entered the book (post-only would cross, margin, bad request)
STATUS_NAMES = {
    FREE: "free",
    PENDING: "pending",
    LIVE: "live",
    FILLED: "filled",
    CANCELED: "canceled",
    REJECTED: "rejected",
}

# request kinds travelling from the agent to the exchange
REQ_NEW = 1
REQ_CANCEL = 2
REQ_AMEND = 3

# reasons attached to responses
R_NONE = 0
R_POST_ONLY_CROSS = 1
R_INSUFFICIENT_MARGIN = 2
R_NOT_ACTIVE = 3  # cancel/amend of an order that is not live at the exchange (already filled, canceled, ...)
R_NO_LIQUIDITY = 4  # market/IOC remainder with nothing left to take
R_LIQUIDATION = 5
R_BAD_REQUEST = 6
R_MAX_NOTIONAL = 7  # the position would exceed the leverage bracket's notional cap
R_NO_BOOK = 8  # arrived before the first book snapshot
R_AMEND_REJECTED = (
    9  # amend refused (would cross as post-only, or qty below executed); the order is unchanged
)
REASON_NAMES = {
    R_NONE: "",
    R_POST_ONLY_CROSS: "post_only_would_cross",
    R_INSUFFICIENT_MARGIN: "insufficient_margin",
    R_NOT_ACTIVE: "order_not_active",
    R_NO_LIQUIDITY: "no_liquidity",
    R_LIQUIDATION: "liquidation",
    R_BAD_REQUEST: "bad_request",
    R_MAX_NOTIONAL: "exceeds_bracket_notional_for_leverage",
    R_NO_BOOK: "no_book_yet",
    R_AMEND_REJECTED: "amend_rejected",
}

ORDER_DTYPE = np.dtype(
    [
        ("id", np.int64),
        ("side", np.int64),
        ("kind", np.int64),
        ("tif", np.int64),
        ("px_tick", np.int64),
        ("qty", np.float64),
        ("leaves", np.float64),  # exchange view
        ("front", np.float64),  # estimated quantity ahead in the queue
        ("cum_trade", np.float64),  # traded at our level since the last book update (not double-counted)
        ("level_qty", np.float64),  # displayed size at our price in the last applied book
        ("reserved", np.float64),  # initial margin held for the opening part of this order
        ("status", np.int64),
        ("local_status", np.int64),
        ("local_leaves", np.float64),
        ("reason", np.int64),
        ("submit_ts", np.int64),  # local time the agent sent it
        ("exch_ts", np.int64),  # exchange time of the last exchange-side change
        ("local_ts", np.int64),  # local time of the last response applied
        ("inflight", np.int64),  # requests + responses still travelling for this order
        ("cancel_sent", np.int64),  # the agent has a cancel travelling
        ("local_px_tick", np.int64),  # price as the agent knows it (changes when an amend is acked)
    ]
)

REQUEST_DTYPE = np.dtype(
    [
        ("kind", np.int64),
        ("slot", np.int64),
        ("arrive_ts", np.int64),
        ("seq", np.int64),
        ("px_tick", np.int64),
        ("qty", np.float64),
    ]
)

# a response on its way to the agent; applied responses are logged with the same layout as order updates
RESPONSE_DTYPE = np.dtype(
    [
        ("local_ts", np.int64),
        ("exch_ts", np.int64),
        ("seq", np.int64),
        ("slot", np.int64),
        ("order_id", np.int64),
        ("status", np.int64),
        ("leaves", np.float64),
        ("px_tick", np.int64),
        ("reason", np.int64),
    ]
)

FILL_DTYPE = np.dtype(
    [
        ("order_id", np.int64),  # -1 for a liquidation
        ("side", np.int64),
        ("px", np.float64),
        ("qty", np.float64),
        ("fee", np.float64),  # paid (negative = rebate); for a liquidation: the clearance fee
        ("maker", np.int64),
        ("liquidation", np.int64),
        ("exch_ts", np.int64),
        ("local_ts", np.int64),  # when the agent learns of it
        ("position_after", np.float64),
    ]
)

ACCOUNT_DTYPE = np.dtype(
    [
        ("position", np.float64),  # signed base units (one-way mode)
        ("entry_px", np.float64),
        ("cash", np.float64),  # wallet balance outside the isolated position margin
        ("iso_wallet", np.float64),  # isolated position margin (the formula's WB)
        ("reserved", np.float64),  # initial margin held by open orders
        ("realized_pnl", np.float64),
        ("fees_paid", np.float64),
        ("funding_paid", np.float64),  # positive: paid out
        ("liq_fees_paid", np.float64),
        (
            "insurance_covered",
            np.float64,
        ),  # losses beyond the isolated margin, absorbed by the insurance fund
        ("mark", np.float64),
        ("liquidated", np.int64),  # number of liquidations so far
        ("traded_qty", np.float64),
        ("n_fills", np.int64),
    ]
)

# engine parameters as one record, read by the compiled loop
CONFIG_DTYPE = np.dtype(
    [
        ("tick", np.float64),
        ("lot", np.float64),
        ("eps", np.float64),  # quantities below this are zero
        ("maker_fee", np.float64),
        ("taker_fee", np.float64),
        ("liq_fee", np.float64),
        ("leverage", np.float64),
        ("queue_model", np.int64),
        ("queue_n", np.float64),
        ("partial_fills", np.int64),
        ("entry_kind", np.int64),
        ("entry_base", np.float64),
        ("entry_sigma", np.float64),
        ("ack_kind", np.int64),
        ("ack_base", np.float64),
        ("ack_sigma", np.float64),
        ("mark_from_book", np.int64),  # no mark-price rows: the book mid is the mark
        ("log_updates", np.int64),  # keep applied responses for the Python API
    ]
)

# slots of the int64 cursor array
C_BOOK = 0  # last book snapshot applied at the exchange (-1: none yet)
C_TRADE = 1  # next trade row
C_FUND = 2  # next funding row
C_MARK = 3  # next mark row
C_SEEN = 4  # last book snapshot the agent has seen (-1: none yet)
C_NOW = 5  # local clock: everything up to here has been processed
C_NEXT_ID = 6  # next order id
C_SEQ = 7  # message sequence number
C_REQ_HEAD = 8  # requests in flight: FIFO [head, tail) (one in-order channel, so sorted by arrival)
C_REQ_TAIL = 9
C_RESP_HEAD = 10  # responses in flight: FIFO [head, tail), sorted by local arrival
C_RESP_TAIL = 11
C_NFILL = 12  # fills recorded
C_NUPD = 13  # applied responses logged
C_HWM = 14  # order slots in use are below this
C_NLIVE = 15  # orders live at the exchange
C_LAST_ARRIVE = 16  # last request arrival time (keeps the channel in order)
C_LAST_RESP = 17  # last response arrival time
C_TRADE_SEEN = 18  # next trade the agent has not seen yet
N_CURSORS = 19

# return codes of the compiled loop
OK = 0
GROW = 1  # a buffer is (nearly) full: the caller grows it and calls again; no event was half-processed
