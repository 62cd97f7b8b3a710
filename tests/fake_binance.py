"""A fake Binance (REST + data.binance.vision files) on 127.0.0.1 for connector tests.

It serves a generated ground-truth market with Binance's paging semantics, counts request weight in fixed
windows and answers 429 (with Retry-After) past the limit, answers 418 to any request sent during a 429's
Retry-After (as Binance bans IPs that keep sending), and injects faults at a configurable rate: 429 with
Retry-After, 5xx, timeouts (a reply slower than the client's timeout), truncated bodies (cut JSON, or a
Content-Length longer than what is sent) and overlapping pages. Every request, fault and ban is counted.
Also fakes the Coin Metrics v4 asset-metrics endpoint and blockchain.info charts for on-chain tests.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from aiohttp import web

HOUR_MS = 3_600_000


# -- ground truth ----------------------------------------------------------------------------------------
@dataclass
class Market:
    symbol: str
    agg_trades: list[dict]
    klines: list[list]  # 1m
    mark_klines: list[list]
    index_klines: list[list]
    funding: list[dict]
    open_interest: list[dict]  # 5m, recent (openInterestHist keeps 30 days)
    premium: dict

    def __post_init__(self) -> None:
        self.agg_ids = np.asarray([r["a"] for r in self.agg_trades], dtype=np.int64)
        self.agg_times = np.asarray([r["T"] for r in self.agg_trades], dtype=np.int64)


def make_market(
    symbol: str = "BTCUSDT",
    start_ms: int = 1_722_470_400_000,  # 2024-08-01
    n_trades: int = 3000,
    trade_span_ms: int = 3 * HOUR_MS,
    kline_minutes: int = 600,
    funding_days: int = 45,
    seed: int = 7,
) -> Market:
    rng = np.random.default_rng(seed)
    # Trades: increasing times (several per ms sometimes), contiguous aggregate ids, with a quiet hour in
    # the middle so locating the first trade after a time must step over an empty window.
    gaps = rng.exponential(trade_span_ms / n_trades, n_trades).astype(np.int64)
    times = start_ms + 5_000 + np.cumsum(gaps)
    times[n_trades // 2 :] += HOUR_MS + 17
    price = 60_000 + np.cumsum(rng.normal(0, 3, n_trades))
    trades = [
        {
            "a": 50_000_000 + i,
            "p": f"{price[i]:.1f}",
            "q": f"{rng.uniform(0.001, 2):.3f}",
            "f": 90_000_000 + 3 * i,
            "l": 90_000_000 + 3 * i + 2,
            "T": int(times[i]),
            "m": bool(rng.random() < 0.5),
        }
        for i in range(n_trades)
    ]

    def bars(base: float, vol: float) -> list[list]:
        out = []
        level = base
        for k in range(kline_minutes):
            o = level
            c = o + rng.normal(0, vol)
            h, lo = max(o, c) + abs(rng.normal(0, vol)), min(o, c) - abs(rng.normal(0, vol))
            level = c
            t = start_ms + k * 60_000
            v = rng.uniform(1, 50)
            out.append([t, f"{o:.2f}", f"{h:.2f}", f"{lo:.2f}", f"{c:.2f}", f"{v:.3f}", t + 59_999,
                        f"{v * c:.4f}", int(rng.integers(10, 900)), f"{v / 2:.3f}", f"{v * c / 2:.4f}", "0"])  # fmt: skip
        return out

    funding = [
        {
            "symbol": symbol,
            "fundingTime": start_ms + k * 8 * HOUR_MS + int(rng.integers(0, 8)),
            "fundingRate": f"{rng.normal(0.0001, 0.0002):.8f}",
            "markPrice": f"{60_000 + rng.normal(0, 500):.8f}" if k % 7 else "",
        }
        for k in range(funding_days * 3)
    ]
    now = int(time.time() * 1000)
    oi_start = now - now % 300_000 - 2 * 24 * HOUR_MS
    open_interest = [
        {
            "symbol": symbol,
            "sumOpenInterest": f"{80_000 + rng.normal(0, 300):.8f}",
            "sumOpenInterestValue": f"{4.8e9 + rng.normal(0, 1e7):.8f}",
            "timestamp": oi_start + k * 300_000,
        }
        for k in range(288)
    ]
    premium = {
        "symbol": symbol,
        "markPrice": "60001.10000000",
        "indexPrice": "60000.20000000",
        "estimatedSettlePrice": "60000.90000000",
        "lastFundingRate": "0.00010000",
        "interestRate": "0.00010000",
        "nextFundingTime": now - now % (8 * HOUR_MS) + 8 * HOUR_MS,
        "time": now,
    }
    return Market(symbol, trades, bars(60_000, 5), bars(60_000, 4), bars(60_000, 4), funding, open_interest,
                  premium)  # fmt: skip


# -- server ----------------------------------------------------------------------------------------------
@dataclass
class FaultPlan:
    rate: float = 0.3
    kinds: tuple[str, ...] = ("429", "5xx", "timeout", "truncated", "overlap")
    retry_after_s: float = 0.2  # fractional Retry-After: a test knob (Binance sends whole seconds)
    timeout_delay_s: float = 1.0  # longer than the client's request timeout


@dataclass
class ServerStats:
    requests: int = 0
    by_path: Counter = field(default_factory=Counter)
    faults: Counter = field(default_factory=Counter)
    limit_429: int = 0  # 429s earned by exceeding the weight limit (not injected)
    bans_418: int = 0
    max_window_weight: int = 0
    bulk_downloads: int = 0
    stale_pages: int = 0  # overlapping pages that hold nothing past the cursor (a kind of 'overlap' fault)
    log: list = field(default_factory=list)  # (path, query) of every REST request, in arrival order

    @property
    def faults_total(self) -> int:
        return sum(self.faults.values())


class FakeBinance:
    def __init__(
        self,
        markets: dict[str, Market] | None = None,
        weight_limit: int = 400,
        window_s: float = 1.0,
        faults: FaultPlan | None = None,
        background_weight: int = 0,  # weight another process on the same IP uses in each window
        weight_factor: float = 1.0,  # charge this multiple of the documented weights (docs out of date)
        files: dict[str, bytes] | None = None,  # data.binance.vision path -> bytes
        bulk_fault_rate: float = 0.0,
        seed: int = 1,
        onchain: dict | None = None,
    ):
        self.markets = markets or {}
        self.weight_limit = weight_limit
        self.window_s = window_s
        self.faults = faults or FaultPlan(rate=0.0)
        self.background_weight = background_weight
        self.weight_factor = weight_factor
        self.files = files or {}
        self.bulk_fault_rate = bulk_fault_rate
        self.rng = np.random.default_rng(seed)
        self.onchain = onchain or {}
        self.stats = ServerStats()
        self._window = -1
        self._used = 0
        self._cooldown_until = 0.0
        self._banned_until = 0.0
        self._deck: list[bool] = []
        self._kind_turn = 0
        self._overlaps = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""

    # lifecycle: the server runs on its own loop in a thread, so sync clients can call it
    def start(self) -> str:
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self._start())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="fake-binance", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self.base_url

    async def _start(self) -> None:
        app = web.Application()
        for prefix in ("/api/v3", "/fapi/v1", "/dapi/v1"):
            app.router.add_get(f"{prefix}/exchangeInfo", self.exchange_info)
            app.router.add_get(f"{prefix}/aggTrades", self.agg_trades)
            app.router.add_get(f"{prefix}/klines", self.klines)
        app.router.add_get("/fapi/v1/markPriceKlines", self.klines)
        app.router.add_get("/fapi/v1/indexPriceKlines", self.klines)
        app.router.add_get("/fapi/v1/fundingRate", self.funding)
        app.router.add_get("/fapi/v1/premiumIndex", self.premium_index)
        app.router.add_get("/futures/data/openInterestHist", self.open_interest)
        app.router.add_get("/data/{tail:.*}", self.bulk_file)
        app.router.add_get("/v4/timeseries/asset-metrics", self.coinmetrics)
        app.router.add_get("/charts/{name}", self.blockchain_chart)
        self._runner = web.AppRunner(app, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        if self._loop is None:
            return
        fut = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop)  # type: ignore[union-attr]
        fut.result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)  # type: ignore[union-attr]

    def __enter__(self) -> FakeBinance:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # weight, bans and faults
    def _header_name(self) -> str:
        letter, num = ("S", int(self.window_s)) if self.window_s < 60 else ("M", int(self.window_s // 60))
        return f"X-MBX-USED-WEIGHT-{num}{letter}"

    def _rate_limits(self) -> list[dict]:
        if self.window_s < 60:
            rule = {"interval": "SECOND", "intervalNum": int(self.window_s)}
        else:
            rule = {"interval": "MINUTE", "intervalNum": int(self.window_s // 60)}
        return [
            {"rateLimitType": "REQUEST_WEIGHT", **rule, "limit": self.weight_limit},
            {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
        ]

    def _admit(self, request: web.Request, weight: int) -> web.Response | None:
        """Count the request; a 418 / 429 response when it must be refused, None when it may proceed."""
        now = time.time()
        self.stats.requests += 1
        self.stats.by_path[request.path] += 1
        self.stats.log.append((request.path, dict(request.query)))
        if now < self._banned_until or now < self._cooldown_until:
            self.stats.bans_418 += 1
            self._banned_until = now + 120
            return self._json(
                {
                    "code": -1003,
                    "msg": f"Way too much request weight used; IP banned until {int(now * 1000)}.",
                },
                418,
                {"Retry-After": "120"},
            )
        window = math.floor(now / self.window_s)
        if window != self._window:
            self._window, self._used = window, self.background_weight
        self._used += math.ceil(weight * self.weight_factor)
        self.stats.max_window_weight = max(self.stats.max_window_weight, self._used)
        if self._used > self.weight_limit:
            self.stats.limit_429 += 1
            return self._too_many(now, (window + 1) * self.window_s - now)
        return None

    def _too_many(self, now: float, retry_after: float) -> web.Response:
        self._cooldown_until = now + retry_after
        return self._json(
            {"code": -1003, "msg": f"Too much request weight used; current limit is {self.weight_limit}."},
            429,
            {"Retry-After": f"{math.ceil(retry_after * 1000) / 1000:.3f}"},  # rounded up, never short
        )

    def _json(self, payload, status: int = 200, headers: dict | None = None) -> web.Response:
        headers = {self._header_name(): str(self._used), **(headers or {})}
        return web.Response(body=json.dumps(payload).encode(), status=status, headers=headers,
                            content_type="application/json")  # fmt: skip

    def _pick_fault(self, paged: bool) -> str | None:
        """Faults are dealt from shuffled decks of 20 requests, so every 20 requests carry round(rate * 20)
        of them (the realized rate is the configured one, not a coin-flip around it), and the kinds take turns."""
        if not self._deck:
            faulty = round(self.faults.rate * 20)
            self._deck = [bool(x) for x in self.rng.permutation([1] * faulty + [0] * (20 - faulty))]
        if not self._deck.pop():
            return None
        kinds = [k for k in self.faults.kinds if paged or k != "overlap"]
        if not kinds:
            return None
        self._kind_turn += 1
        return kinds[self._kind_turn % len(kinds)]

    async def _respond(
        self, request: web.Request, weight: int, build, paged: bool = True
    ) -> web.StreamResponse:
        """Admission, fault injection and the reply; build(overlap: bool) -> payload or an error response."""
        refused = self._admit(request, weight)
        if refused is not None:
            return refused
        fault = self._pick_fault(paged)
        if fault is not None:
            self.stats.faults[fault] += 1
        if fault == "429":
            return self._too_many(time.time(), self.faults.retry_after_s)
        if fault == "5xx":
            status = int(self.rng.choice([500, 502, 503, 504]))
            return web.Response(
                text="upstream error", status=status, headers={self._header_name(): str(self._used)}
            )
        if fault == "timeout":
            await asyncio.sleep(self.faults.timeout_delay_s)
        payload = build(fault == "overlap")
        if isinstance(payload, web.StreamResponse):
            return payload
        if fault == "truncated":
            body = json.dumps(payload).encode()
            if self.rng.random() < 0.5:
                return web.Response(body=body[: max(1, len(body) // 2)], content_type="application/json",
                                    headers={self._header_name(): str(self._used)})  # fmt: skip
            # Announce the full length, send half, drop the connection.
            resp = web.StreamResponse(headers={self._header_name(): str(self._used)})
            resp.content_length = len(body)
            resp.content_type = "application/json"
            await resp.prepare(request)
            await resp.write(body[: len(body) // 2])
            request.transport.close()  # type: ignore[union-attr]
            return resp
        return self._json(payload)

    @staticmethod
    def _error(code: int, msg: str, status: int = 400) -> web.Response:
        return web.Response(body=json.dumps({"code": code, "msg": msg}).encode(), status=status,
                            content_type="application/json")  # fmt: skip

    def _market(self, request: web.Request) -> Market | web.Response:
        symbol = request.query.get("symbol") or request.query.get("pair")
        if symbol not in self.markets:
            return self._error(-1121, "Invalid symbol.")
        return self.markets[symbol]

    def _overlap_shift(self, start_index: int, limit: int, overlap: bool) -> int:
        """Where an overlapping page starts: some rows before the cursor, or (every other time) a whole page
        before it, which holds nothing past the cursor."""
        if not overlap or start_index == 0:
            return start_index
        self._overlaps += 1
        if start_index >= limit and self._overlaps % 2 == 0:
            self.stats.stale_pages += 1
            return start_index - limit
        return max(0, start_index - int(self.rng.integers(1, max(2, limit // 2 + 1))))

    # REST endpoints
    async def exchange_info(self, request: web.Request) -> web.StreamResponse:
        weight = 20 if request.path.startswith("/api/") else 1

        def build(_overlap: bool):
            return {"timezone": "UTC", "serverTime": int(time.time() * 1000), "rateLimits": self._rate_limits(),
                    "symbols": [{"symbol": s} for s in self.markets]}  # fmt: skip

        return await self._respond(request, weight, build, paged=False)

    async def agg_trades(self, request: web.Request) -> web.StreamResponse:
        q = request.query
        futures = not request.path.startswith("/api/")
        weight = 20 if futures else 4

        def build(overlap: bool):
            market = self._market(request)
            if isinstance(market, web.Response):
                return market
            limit = int(q.get("limit", 500))
            if not 1 <= limit <= 1000:
                return self._error(-1100, "Illegal characters found in parameter 'limit'.")
            start, end = q.get("startTime"), q.get("endTime")
            if "fromId" in q:
                if futures and (start or end):
                    return self._error(-1128, "Combination of optional parameters invalid.")
                i = int(np.searchsorted(market.agg_ids, int(q["fromId"])))
                i = self._overlap_shift(i, limit, overlap)
                return market.agg_trades[i : i + limit]
            if start and end and futures and int(end) - int(start) >= HOUR_MS:
                return self._error(-1127, "More than 1 hours between startTime and endTime.")
            lo = int(np.searchsorted(market.agg_times, int(start))) if start else 0
            hi = (
                int(np.searchsorted(market.agg_times, int(end), side="right")) if end else len(market.agg_ids)
            )
            if start or not end:
                return market.agg_trades[lo:hi][:limit]
            return market.agg_trades[lo:hi][-limit:]

        return await self._respond(request, weight, build)

    def _time_window(self, q, rows: list, time_of, overlap: bool, default_limit: int, max_limit: int):
        """Binance's time paging: with startTime the oldest `limit` rows from it, else the newest up to endTime;
        both bounds inclusive."""
        limit = int(q.get("limit", default_limit))
        if not 1 <= limit <= max_limit:
            return self._error(-1100, f"limit must be 1..{max_limit}")
        times = [time_of(r) for r in rows]
        start, end = q.get("startTime"), q.get("endTime")
        lo = int(np.searchsorted(times, int(start))) if start else 0
        hi = int(np.searchsorted(times, int(end), side="right")) if end else len(rows)
        if not start:
            return rows[lo:hi][-limit:]
        lo = self._overlap_shift(lo, limit, overlap)
        return rows[lo:hi][:limit]

    async def klines(self, request: web.Request) -> web.StreamResponse:
        q = request.query
        spot = request.path.startswith("/api/")
        limit = int(q.get("limit", 500))
        weight = 2 if spot else (1 if limit < 100 else 2 if limit < 500 else 5 if limit <= 1000 else 10)

        def build(overlap: bool):
            market = self._market(request)
            if isinstance(market, web.Response):
                return market
            if q.get("interval") != "1m":
                return self._error(-1120, "Invalid interval.")
            rows = {"markPriceKlines": market.mark_klines, "indexPriceKlines": market.index_klines}.get(
                request.path.rsplit("/", 1)[1], market.klines
            )
            return self._time_window(q, rows, lambda r: r[0], overlap, 500, 1000 if spot else 1500)

        return await self._respond(request, weight, build)

    async def funding(self, request: web.Request) -> web.StreamResponse:
        def build(overlap: bool):
            market = self._market(request)
            if isinstance(market, web.Response):
                return market
            return self._time_window(
                request.query, market.funding, lambda r: r["fundingTime"], overlap, 100, 1000
            )

        return await self._respond(request, 1, build)

    async def open_interest(self, request: web.Request) -> web.StreamResponse:
        def build(overlap: bool):
            market = self._market(request)
            if isinstance(market, web.Response):
                return market
            if request.query.get("period") != "5m":
                return self._error(-1120, "Invalid period.")
            return self._time_window(
                request.query, market.open_interest, lambda r: r["timestamp"], overlap, 30, 500
            )

        return await self._respond(request, 1, build)

    async def premium_index(self, request: web.Request) -> web.StreamResponse:
        def build(_overlap: bool):
            market = self._market(request)
            return market if isinstance(market, web.Response) else market.premium

        return await self._respond(request, 1, build, paged=False)

    # data.binance.vision
    async def bulk_file(self, request: web.Request) -> web.StreamResponse:
        path = request.path.lstrip("/")
        self.stats.requests += 1
        self.stats.by_path[request.path] += 1
        if path not in self.files:
            return web.Response(status=404, text="<Error><Code>NoSuchKey</Code></Error>")
        body = self.files[path]
        if self.rng.random() < self.bulk_fault_rate:
            kind = "bulk_5xx" if self.rng.random() < 0.5 else "bulk_truncated"
            self.stats.faults[kind] += 1
            if kind == "bulk_5xx":
                return web.Response(status=503, text="Service Unavailable")
            resp = web.StreamResponse()
            resp.content_length = len(body)
            await resp.prepare(request)
            await resp.write(body[: len(body) // 2])
            request.transport.close()  # type: ignore[union-attr]
            return resp
        self.stats.bulk_downloads += 1
        return web.Response(body=body)

    # on-chain providers
    async def coinmetrics(self, request: web.Request) -> web.StreamResponse:
        """Coin Metrics v4 asset-metrics: rows for one asset, paged by page_size with next_page_url."""
        self.stats.requests += 1
        self.stats.by_path[request.path] += 1
        q = request.query
        if self.rng.random() < self.faults.rate:
            self.stats.faults["cm_429"] += 1
            return web.Response(status=429, headers={"Retry-After": f"{self.faults.retry_after_s:.3f}"},
                                body=b'{"error":{"type":"too_many_requests","message":"Requests rate limit exceeded."}}',
                                content_type="application/json")  # fmt: skip
        asset = q.get("assets", "")
        table = self.onchain.get("coinmetrics", {}).get(asset)
        if table is None:
            return web.json_response({"error": {"type": "bad_parameter", "message": f"Bad asset '{asset}'."}},
                                     status=400)  # fmt: skip
        metrics = q.get("metrics", "").split(",")
        unknown = [m for m in metrics if m not in table["metrics"]]
        if unknown:
            return web.json_response({"error": {"type": "bad_parameter",
                                                "message": f"Bad metrics '{','.join(unknown)}'."}}, status=400)  # fmt: skip
        start, end = q.get("start_time", ""), q.get("end_time", "9999")
        rows = []
        for day, values in table["rows"]:
            if start <= day <= end:
                row = {"asset": asset, "time": f"{day}T00:00:00.000000000Z"}
                for m in metrics:
                    if values.get(m) is not None:
                        row[m] = values[m]
                rows.append(row)
        size = int(q.get("page_size", 100))
        offset = int(q.get("next_page_token", 0))
        page = rows[offset : offset + size]
        body: dict = {"data": page}
        if offset + size < len(rows):
            params = {k: v for k, v in q.items() if k != "next_page_token"}
            params["next_page_token"] = str(offset + size)
            query = "&".join(f"{k}={v}" for k, v in params.items())
            body["next_page_token"] = str(offset + size)
            body["next_page_url"] = f"{self.base_url}{request.path}?{query}"
        return web.json_response(body)

    async def blockchain_chart(self, request: web.Request) -> web.StreamResponse:
        self.stats.requests += 1
        self.stats.by_path[request.path] += 1
        name = request.match_info["name"]
        chart = self.onchain.get("blockchain", {}).get(name)
        if chart is None:
            return web.Response(status=404, text="Chart not found")
        return web.json_response({"status": "ok", "name": name, "unit": chart.get("unit", ""), "period": "day",
                                  "description": "", "values": chart["values"]})  # fmt: skip
