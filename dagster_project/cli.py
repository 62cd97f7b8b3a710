"""The `scalper` command line. Every command that produces data runs the Dagster assets in-process
(`dagster.materialize`), so a run from the terminal and a run from the Dagster UI are the same code.
"""

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import typer
from loguru import logger

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Risk-aware RL scalper: lake, features, agent."
)
ingest_app = typer.Typer(no_args_is_help=True, help="Land market data into the lake's raw Delta tables.")
lake_app = typer.Typer(no_args_is_help=True, help="Inspect the lake.")
app.add_typer(ingest_app, name="ingest")
app.add_typer(lake_app, name="lake")

LakeOption = typer.Option(None, "--lake", help="Lake root (path or URI); default $SCALPER_LAKE or ./lake")


class CliError(Exception):
    """Bad input: printed as one line naming the input and the fix, exit code 2."""


def main() -> None:
    logger.remove()
    logger.add(
        sys.stderr,
        level=os.environ.get("SCALPER_LOG_LEVEL", "WARNING"),
        format="{time:HH:mm:ss} {level} {message}",
    )
    try:
        app()
    except CliError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise SystemExit(2) from None


# -- input parsing (fail before anything is written) --------------------------------------------------------
def parse_day(value: str, name: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise CliError(f"{name} {value!r} is not a date; use YYYY-MM-DD, e.g. 2024-08-08") from None


def day_range(start: str, end: str) -> list[str]:
    first, last = parse_day(start, "--start"), parse_day(end, "--end")
    if last < first:
        raise CliError(f"--end {end} is before --start {start}; swap them or fix the range")
    from dagster_project.partitions import FIRST_DAY

    if first < dt.date.fromisoformat(FIRST_DAY):
        raise CliError(f"--start {start} is before the first partition day {FIRST_DAY}; start on or after it")
    return [(first + dt.timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


def check_symbol(symbol: str, market: str = "usdm") -> str:
    from feature_store.instruments import UnknownSymbolError, instrument

    try:
        return instrument(symbol, market).symbol
    except UnknownSymbolError as exc:
        raise CliError(str(exc)) from None


def open_lake(root: str | None):
    from feature_store.lake import Lake, LakeError

    lake = Lake(root)
    try:
        lake.ensure_usable()
    except LakeError as exc:
        raise CliError(str(exc)) from None
    return lake


def load_config_file(path: Path | None) -> dict:
    """Source parameters from a YAML or JSON file (keys as in SyntheticConfig)."""
    if path is None:
        return {}
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise CliError(f"--config {path}: no such file") from None
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0]
        raise CliError(f"--config {path} is not valid YAML/JSON ({first}); fix the file") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise CliError(f"--config {path} must hold a mapping of parameter: value, got {type(data).__name__}")
    return data


# -- running the assets ------------------------------------------------------------------------------------
def dagster_instance():
    """A persistent instance under $DAGSTER_HOME (default ./.dagster_home), so `scalper ui` shows CLI runs."""
    import dagster as dg

    home = Path(os.environ.setdefault("DAGSTER_HOME", str(Path(".dagster_home").resolve())))
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text("telemetry:\n  enabled: false\n")
    return dg.DagsterInstance.get()


def land(lake, source_config: dict, partitions: list[tuple[str, str]]) -> list[dict]:
    """Materialize the raw assets (and their checks) for each (symbol, day); returns the day QC counters."""
    import dagster as dg
    from tqdm import tqdm

    from dagster_project.assets.ingest import raw_key, raw_market
    from dagster_project.checks import RAW_CHECKS
    from dagster_project.partitions import partition_key
    from dagster_project.resources import LakeResource, MarketSourceResource

    try:
        source_resource = MarketSourceResource(**source_config)
        produced = source_resource.get(lake).tables()
    except (TypeError, ValueError) as exc:
        raise CliError(f"source configuration is invalid: {str(exc).splitlines()[0]}") from None
    selection = dg.AssetSelection.assets(*[raw_key(t) for t in produced])
    instance = dagster_instance()
    summaries = []
    for symbol, day in tqdm(partitions, desc="landing", unit="partition", disable=len(partitions) < 2):
        result = dg.materialize(
            [raw_market, *RAW_CHECKS],
            selection=selection,
            partition_key=partition_key(symbol, day),
            resources={"lake": LakeResource(root=lake.root), "market_source": source_resource},
            instance=instance,
            raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
        )
        if not result.success:
            raise CliError(f"landing {symbol} {day} failed: {_first_failure(result)}")
        failed_checks = [c for c in result.get_asset_check_evaluations() if not c.passed]
        for check in failed_checks:
            typer.secho(
                f"check failed: {check.check_name} {symbol} {day}: {check.description}", fg="yellow", err=True
            )
        summaries.append(_read_day_metrics(lake, symbol, day))
    return summaries


def _first_failure(result) -> str:
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data and event.step_failure_data.error:
            error = event.step_failure_data.error
            while error.cause is not None:
                error = error.cause
            return error.message.strip().splitlines()[-1]
    return "see the Dagster run log"


def _read_day_metrics(lake, symbol: str, day: str) -> dict:
    from feature_store.qc import read_metrics

    return read_metrics(lake, symbol, day) or {"symbol": symbol, "date": day}


def print_qc_summary(lake, summaries: list[dict]) -> None:
    header = (
        f"{'date':<11}{'books':>10}{'trades':>11}{'1-tick':>8}{'spread p99':>11}{'L1 depth':>9}"
        f"{'trades/s':>9}{'lag p50':>10}{'gap rate':>9}{'max gap':>8}{'quar.':>7}"
    )
    typer.echo("\nQC summary")
    typer.echo(header)
    for s in summaries:
        quarantined = sum((s.get("quarantined") or {}).values())
        depth = (s.get("depth_bid_l1_mean") or 0) + (s.get("depth_ask_l1_mean") or 0)
        typer.echo(
            f"{s['date']:<11}{s.get('book_rows', 0):>10,}{s.get('trade_rows', 0):>11,}"
            f"{_fmt(s.get('spread_one_tick_share'), '.1%'):>8}{_fmt(s.get('spread_bps_p99'), '.2f'):>8} bp"
            f"{_fmt(depth / 2, '.2f'):>9}{_fmt(s.get('trades_per_s_mean'), '.1f'):>9}"
            f"{_fmt(s.get('book_lag_ms_p50'), '.1f'):>8}ms{_fmt(s.get('book_gap_rate'), '.2%'):>9}"
            f"{_fmt(s.get('book_max_gap_s'), '.1f'):>7}s{quarantined:>7,}"
        )
    typer.echo(f"\nLake:        {lake.root}  (scalper lake ls)")
    typer.echo(f"QC JSON:     {lake.uri('metrics', 'ingest')}/<symbol>/<date>.json")
    typer.echo("Dagster UI:  make ui  (runs from this CLI appear there too)")


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


# -- commands ----------------------------------------------------------------------------------------------
@ingest_app.command("synthetic")
def ingest_synthetic(
    symbol: str = typer.Option("BTCUSDT", help="Instrument, e.g. BTCUSDT"),
    start: str = typer.Option(..., help="First day, YYYY-MM-DD"),
    end: str = typer.Option(..., help="Last day (inclusive), YYYY-MM-DD"),
    seed: int = typer.Option(0, help="Random seed; the same seed gives the same market"),
    signal_strength: float = typer.Option(0.0, help="Planted order-flow edge; 0 = martingale mid, no edge"),
    config: Path | None = typer.Option(None, help="YAML/JSON file of extra synthetic-market parameters"),
    lake_root: str | None = LakeOption,
) -> None:
    """Simulate and land a synthetic perpetual market (books, trades, funding, mark price, on-chain)."""
    days = day_range(start, end)
    symbol = check_symbol(symbol)
    if signal_strength < 0:
        raise CliError(
            f"--signal-strength {signal_strength} is negative; use 0 (no edge) or a positive value"
        )
    extra = load_config_file(config)
    unknown = set(extra) - {"seed", "signal_strength", "grid_ms", "epoch"}
    if unknown:
        raise CliError(
            f"--config {config}: unknown parameter(s) {', '.join(sorted(unknown))}; "
            "allowed: seed, signal_strength, grid_ms, epoch"
        )
    lake = open_lake(lake_root)
    source = {
        "kind": "synthetic",
        "seed": seed,
        "signal_strength": signal_strength,
        "epoch": days[0],
        **extra,
    }
    print_qc_summary(lake, land(lake, source, [(symbol, d) for d in days]))


MARKETS = ("spot", "usdm", "coinm")


def check_market(market: str) -> str:
    if market not in MARKETS:
        raise CliError(f"--market {market!r} is not one of {', '.join(MARKETS)}")
    return market


def split_list(value: str, name: str, allowed: tuple[str, ...]) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [v for v in items if v not in allowed]
    if unknown or not items:
        listed = ", ".join(unknown) or "empty list"
        raise CliError(f"{name} {value!r}: unknown {listed}; choose from {', '.join(allowed)}")
    return items


def land_capture(lake, source_config: dict, symbol: str | None) -> None:
    """Land every (symbol, day) a capture holds and print its sequencing QC."""
    from feature_store.sources import make_source

    try:
        source = make_source(**source_config)
        partitions = source.partitions()
    except (FileNotFoundError, ValueError) as exc:
        raise CliError(str(exc).splitlines()[0]) from None
    if symbol:
        partitions = [(s, d) for s, d in partitions if s == symbol.upper()]
        if not partitions:
            raise CliError(f"--symbol {symbol}: the capture holds no rows for it")
    for sym in {s for s, _ in partitions}:
        check_symbol(sym, source.market)
    summaries = land(lake, source_config, partitions)
    qc = source.result().qc
    typer.echo("\nCapture QC")
    for sym, sq in qc.symbols.items():
        book = sq.book
        typer.echo(
            f"  {sym}: {book.gaps} sequence gaps, {book.crossed_events} crossed books, {book.resyncs} resyncs, "
            f"bookTicker match {sq.ticker_match.exact_rate:.2%} where update ids line up"
        )
    if qc.malformed_count:
        typer.secho(f"  {qc.malformed_count} malformed lines (first: {qc.malformed[0]})", fg="yellow")
    print_qc_summary(lake, summaries)


@ingest_app.command("binance-capture")
def ingest_binance_capture(
    files: list[Path] = typer.Argument(
        ..., help="Capture files (gzip lines '<recv ts> <raw JSON>'), in order"
    ),
    market: str = typer.Option("usdm", help="spot, usdm or coinm (decides the book sequencing rule)"),
    symbol: str | None = typer.Option(None, help="Land only this symbol"),
    grid_ms: int = typer.Option(100, help="Book snapshot grid (ms)"),
    lake_root: str | None = LakeOption,
) -> None:
    """Rebuild books exactly from recorded Binance WebSocket captures and land every table they hold."""
    check_market(market)
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise CliError(f"capture file(s) not found: {', '.join(missing)}")
    lake = open_lake(lake_root)
    config = {
        "kind": "binance-capture",
        "paths": [str(f) for f in files],
        "market": market,
        "grid_ms": grid_ms,
    }
    land_capture(lake, config, symbol)


REST_DATASETS = ("aggTrades", "klines", "fundingRate", "markPrice", "premiumIndex", "openInterest")
BULK_KINDS = ("aggTrades", "trades", "bookTicker", "bookDepth", "fundingRate", "metrics", "klines")


@ingest_app.command("binance-rest")
def ingest_binance_rest(
    market: str = typer.Option("usdm"),
    symbol: str = typer.Option("BTCUSDT"),
    start: str = typer.Option(..., help="First day, YYYY-MM-DD"),
    end: str = typer.Option(..., help="Last day (inclusive)"),
    what: str = typer.Option(
        "aggTrades,fundingRate,markPrice", help=f"Comma list of {', '.join(REST_DATASETS)}"
    ),
    base_url: str | None = typer.Option(None, help="REST base URL (default: Binance's for the market)"),
    lake_root: str | None = LakeOption,
) -> None:
    """Fetch history from Binance REST (weight-aware, resumable) and land it."""
    days = day_range(start, end)
    symbol = check_symbol(symbol, check_market(market))
    datasets = split_list(what, "--what", REST_DATASETS)
    lake = open_lake(lake_root)
    config = {"kind": "binance-rest", "market": market, "what": datasets, "base_url": base_url}
    print_qc_summary(lake, land(lake, config, [(symbol, d) for d in days]))


@ingest_app.command("binance-bulk")
def ingest_binance_bulk(
    market: str = typer.Option("usdm"),
    symbol: str = typer.Option("BTCUSDT"),
    start: str = typer.Option(..., help="First day, YYYY-MM-DD"),
    end: str = typer.Option(..., help="Last day (inclusive)"),
    kinds: str = typer.Option("aggTrades,bookTicker,metrics", help=f"Comma list of {', '.join(BULK_KINDS)}"),
    base_url: str | None = typer.Option(None, help="Archive base URL (default https://data.binance.vision/)"),
    lake_root: str | None = LakeOption,
) -> None:
    """Download checksum-verified daily/monthly archives from data.binance.vision and land them."""
    days = day_range(start, end)
    symbol = check_symbol(symbol, check_market(market))
    config = {"kind": "binance-bulk", "market": market, "kinds": split_list(kinds, "--kinds", BULK_KINDS)}
    config["base_url"] = base_url
    lake = open_lake(lake_root)
    print_qc_summary(lake, land(lake, config, [(symbol, d) for d in days]))


@ingest_app.command("tardis")
def ingest_tardis(
    folder: Path = typer.Option(..., help="Folder of Tardis.dev CSV(.gz) files"),
    symbol: str = typer.Option("BTCUSDT"),
    start: str = typer.Option(..., help="First day, YYYY-MM-DD"),
    end: str = typer.Option(..., help="Last day (inclusive)"),
    market: str = typer.Option("usdm"),
    lake_root: str | None = LakeOption,
) -> None:
    """Land Tardis.dev incremental_book_L2 / book_snapshot_25 / trades / derivative_ticker files."""
    days = day_range(start, end)
    symbol = check_symbol(symbol, check_market(market))
    if not folder.is_dir():
        raise CliError(f"--folder {folder} is not a folder of Tardis CSV files")
    lake = open_lake(lake_root)
    config = {"kind": "tardis", "folder": str(folder), "market": market}
    print_qc_summary(lake, land(lake, config, [(symbol, d) for d in days]))


@ingest_app.command("onchain")
def ingest_onchain(
    symbol: str = typer.Option("BTCUSDT", help="Perpetual whose base asset's metrics to land"),
    start: str = typer.Option(..., help="First day, YYYY-MM-DD"),
    end: str = typer.Option(..., help="Last day (inclusive)"),
    provider: str = typer.Option("coinmetrics", help="coinmetrics or blockchain.info"),
    metrics: str = typer.Option("AdrActCnt,TxCnt", help="Comma list of the provider's metric names"),
    base_url: str | None = typer.Option(None),
    lake_root: str | None = LakeOption,
) -> None:
    """Land daily on-chain metrics, each stamped with when it became available (no look-ahead)."""
    days = day_range(start, end)
    symbol = check_symbol(symbol)
    if provider not in ("coinmetrics", "blockchain.info"):
        raise CliError(f"--provider {provider!r}: use coinmetrics or blockchain.info")
    lake = open_lake(lake_root)
    config = {"kind": "onchain", "provider": provider, "metrics": [m for m in metrics.split(",") if m]}
    config["base_url"] = base_url
    print_qc_summary(lake, land(lake, config, [(symbol, d) for d in days]))


@lake_app.command("ls")
def lake_ls(lake_root: str | None = LakeOption) -> None:
    """Tables, Delta versions, partitions and row counts."""
    lake = open_lake(lake_root)
    infos = lake.describe()
    if not infos:
        typer.echo(f"{lake.root}: empty lake (land data with `scalper ingest ...` or `scalper demo`)")
        return
    for info in infos:
        typer.echo(f"{info.zone}/{info.table}  version {info.version}  {info.rows:,} rows  {info.uri}")
        for (symbol, date), rows in info.partitions.items():
            typer.echo(f"    {symbol:<12} {date}  {rows:>12,}")


@app.command()
def demo(
    source: str = typer.Option(
        "synthetic", help="synthetic (the whole pipeline) or binance-sample (landing only)"
    ),
    symbol: str = typer.Option("BTCUSDT"),
    start: str = typer.Option("2024-08-07", help="First of the three demo days (train, validation, test)"),
    seed: int = typer.Option(7),
    signal_strength: float = typer.Option(0.5, help="Planted edge of the synthetic market (0: none)"),
    train_steps: int = typer.Option(3000, help="Env steps of the short training run"),
    eval_episodes: int = typer.Option(24, help="Out-of-sample episodes (5 min each) per policy"),
    land_only: bool = typer.Option(False, help="Stop after landing the raw data"),
    lake_root: str | None = LakeOption,
) -> None:
    """The main job on the embedded data: land 3 synthetic days -> dbt features -> snapshot -> drift report ->
    training -> out-of-sample evaluation against the baselines -> export."""
    if source == "binance-sample":
        land_capture(open_lake(lake_root), {"kind": "binance-sample", "market": "usdm"}, None)
        return
    if source != "synthetic":
        raise CliError(f"--source {source!r}: use synthetic or binance-sample")
    first = parse_day(start, "--start")
    d1, d2, d3 = ((first + dt.timedelta(days=i)).isoformat() for i in range(3))
    typer.secho(
        f"[1/6] landing {symbol} {d1}..{d3} (synthetic, seed {seed}, signal {signal_strength})", bold=True
    )
    ingest_synthetic(
        symbol=symbol,
        start=d1,
        end=d3,
        seed=seed,
        signal_strength=signal_strength,
        config=None,
        lake_root=lake_root,
    )
    if land_only:
        return
    lake = open_lake(lake_root)
    typer.secho(f"\n[2/6] dbt feature store over {d1}..{d3}, train-fit statistics on {d1}", bold=True)
    build_features(lake, d1, d3, (d1, d1))
    typer.secho("\n[3/6] snapshot: train / validation / test = one day each", bold=True)
    snapshot_id = create_snapshot(lake, (d1, d1), (d2, d2), (d3, d3))
    typer.echo(f"snapshot {snapshot_id} in {lake.uri('snapshots', snapshot_id)}")
    typer.secho("\n[4/6] drift of validation and test against train (Evidently)", bold=True)
    from dagster_project.assets.agent import agent_model, drift_report

    drift_meta = run_asset(drift_report, {"snapshot_id": snapshot_id, "sample_rows": 2000}, lake, "drift")
    typer.echo(
        f"share of drifted columns: val {drift_meta['val_share_drifted']:.0%}, test {drift_meta['test_share_drifted']:.0%}"
        f" (reports under {lake.uri('reports', 'drift', snapshot_id)})"
    )
    typer.secho(f"\n[5/6] training {train_steps} env steps on the train split", bold=True)
    cfg = {
        "snapshot_id": snapshot_id,
        "config_file": "",
        "total_steps": train_steps,
        "seed": seed,
        "runs_root": "runs",
    }
    model_id = run_asset(agent_model, cfg, lake, "training")["model_id"]
    typer.secho(f"\n[6/6] out-of-sample evaluation of {model_id} on {d3}, then export", bold=True)
    evaluate_cmd(
        model=model_id,
        max_episodes=eval_episodes,
        runs_root="runs",
        reports_root="reports",
        lake_root=lake.root,
    )
    export_cmd(model=model_id, runs_root="runs", reports_root="reports", lake_root=lake.root)
    typer.echo("\nNext: make dashboard (reports, QC, drift, registry) · make ui (the Dagster asset graph)")


@app.command()
def ui(port: int = typer.Option(3000), lake_root: str | None = LakeOption) -> None:
    """Start the Dagster UI (dagster dev) on 127.0.0.1 with every asset and its partitions."""
    dagster_instance()
    env = dict(os.environ)
    if lake_root:
        env["SCALPER_LAKE"] = lake_root
    exe = Path(sys.executable).with_name("dagster")
    cmd = [str(exe), "dev", "-m", "dagster_project.definitions", "-h", "127.0.0.1", "-p", str(port)]
    raise SystemExit(subprocess.call(cmd, env=env))


# -- features and snapshots -----------------------------------------------------------------------------------
def default_resources(root: str) -> dict:
    from dagster_project.resources import default_resources as resources_for

    return resources_for(root)


features_app = typer.Typer(no_args_is_help=True, help="Build the dbt feature store.")
snapshot_app = typer.Typer(no_args_is_help=True, help="Versioned feature snapshots.")
app.add_typer(features_app, name="features")
app.add_typer(snapshot_app, name="snapshot")


def parse_window_option(value: str, name: str) -> tuple[str, str]:
    parts = value.split(":")
    if len(parts) != 2:
        raise CliError(f"{name} {value!r} must be FIRST:LAST days, e.g. 2024-08-07:2024-08-08")
    first, last = parse_day(parts[0], name), parse_day(parts[1], name)
    if last < first:
        raise CliError(f"{name} {value!r} ends before it starts; swap the days")
    return first.isoformat(), last.isoformat()


def build_features(lake, start: str, end: str, train: tuple[str, str]) -> None:
    """Materialize the dbt feature models for the days start..end in one dbt run (single-run backfill)."""
    import dagster as dg

    from dagster_project.assets.features import feature_models

    job_assets = [feature_models]
    result = dg.materialize(
        job_assets,
        resources=default_resources(lake.root),
        tags={"dagster/asset_partition_range_start": start, "dagster/asset_partition_range_end": end},
        run_config={
            "ops": {job_assets[0].op.name: {"config": {"train_start": train[0], "train_end": train[1]}}},
            "loggers": {"console": {"config": {"log_level": "WARNING"}}},
        },
        instance=dagster_instance(),
        raise_on_error=False,
    )
    if not result.success:
        raise CliError(f"feature build {start}..{end} failed: {_first_failure(result)}")


@features_app.command("build")
def features_build(
    start: str = typer.Option(..., help="First day to build, YYYY-MM-DD"),
    end: str = typer.Option(..., help="Last day (inclusive)"),
    train: str = typer.Option(
        None, help="Train split FIRST:LAST for the train-fit statistics (default: start:end)"
    ),
    lake_root: str | None = LakeOption,
) -> None:
    """Run the dbt feature models (features, labels, QC tests, normalization, regimes) over landed days."""
    days = day_range(start, end)
    window = parse_window_option(train, "--train") if train else (days[0], days[-1])
    lake = open_lake(lake_root)
    if not lake.is_local:
        raise CliError(f"--lake {lake.root}: the DuckDB warehouse needs a local lake folder")
    build_features(lake, days[0], days[-1], window)
    typer.echo(
        f"features built for {days[0]}..{days[-1]} (train {window[0]}..{window[1]}) in {lake.root}/warehouse.duckdb"
    )
    typer.echo(
        f"published tables: {lake.uri('features')}/, daily metrics JSON: {lake.uri('features', 'metrics')}/"
    )


def create_snapshot(lake, train: tuple[str, str], val: tuple[str, str], test: tuple[str, str]) -> str:
    import dagster as dg

    from dagster_project.assets.features import feature_snapshot

    result = dg.materialize(
        [feature_snapshot],
        resources=default_resources(lake.root),
        run_config={
            "ops": {
                feature_snapshot.op.name: {
                    "config": {"train": ":".join(train), "val": ":".join(val), "test": ":".join(test)}
                }
            },
            "loggers": {"console": {"config": {"log_level": "WARNING"}}},
        },
        instance=dagster_instance(),
        raise_on_error=False,
    )
    if not result.success:
        raise CliError(f"snapshot creation failed: {_first_failure(result)}")
    mat = result.get_asset_materialization_events()[0].materialization
    return mat.metadata["snapshot_id"].value


@snapshot_app.command("create")
def snapshot_create(
    train: str = typer.Option(..., help="Train days FIRST:LAST"),
    val: str = typer.Option(..., help="Validation days FIRST:LAST"),
    test: str = typer.Option(..., help="Test days FIRST:LAST"),
    lake_root: str | None = LakeOption,
) -> None:
    """Freeze the built features into a content-addressed snapshot and print its id."""
    windows = [parse_window_option(v, n) for v, n in ((train, "--train"), (val, "--val"), (test, "--test"))]
    lake = open_lake(lake_root)
    snapshot_id = create_snapshot(lake, *windows)
    typer.echo(snapshot_id)


@snapshot_app.command("ls")
def snapshot_ls(lake_root: str | None = LakeOption) -> None:
    """Snapshots in the lake with their split windows and schema hash."""
    from feature_store import snapshots

    lake = open_lake(lake_root)
    folder = Path(lake.root) / "snapshots"
    ids = (
        sorted(p.name for p in folder.iterdir() if (p / "metadata.json").exists()) if folder.is_dir() else []
    )
    if not ids:
        typer.echo("no snapshots yet: scalper snapshot create --train A:B --val C:D --test E:F")
    for snapshot_id in ids:
        meta = snapshots.metadata(lake.root, snapshot_id)
        splits = ", ".join(f"{k} {v.get('start')}..{v.get('end')}" for k, v in meta.get("splits", {}).items())
        typer.echo(f"{snapshot_id}  schema {str(meta.get('schema_hash'))[:12]}  {splits}")


# -- agent ----------------------------------------------------------------------------------------------------
def run_asset(asset, config: dict, lake, what: str) -> dict:
    """Materialize one asset in-process with its op config; returns its materialization metadata."""
    import dagster as dg

    result = dg.materialize(
        [asset],
        resources=default_resources(lake.root),
        run_config={
            "ops": {asset.op.name: {"config": config}},
            "loggers": {"console": {"config": {"log_level": "WARNING"}}},
        },
        instance=dagster_instance(),
        raise_on_error=False,
    )
    if not result.success:
        raise CliError(f"{what} failed: {_first_failure(result)}")
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    return {k: v.value for k, v in metadata.items()}


@app.command()
def drift(
    snapshot: str = typer.Option("", help="Snapshot id (default: the newest snapshot asset)"),
    sample_rows: int = typer.Option(5000, help="Rows sampled per side"),
    lake_root: str | None = LakeOption,
) -> None:
    """Evidently drift report of a snapshot's val and test splits against train (HTML + JSON in the lake)."""
    from dagster_project.assets.agent import drift_report

    meta = run_asset(
        drift_report, {"snapshot_id": snapshot, "sample_rows": sample_rows}, open_lake(lake_root), "drift"
    )
    for key, value in meta.items():
        typer.echo(f"{key}: {value}")


@app.command("train")
def train_cmd(
    snapshot: str = typer.Option("", help="Feature snapshot id (default: the newest snapshot asset)"),
    config: Path | None = typer.Option(None, help="TrainConfig file (.toml or .json)"),
    steps: int = typer.Option(0, help="Env steps (0: the config's)"),
    seed: int = typer.Option(0),
    runs_root: str = typer.Option("runs", help="Where checkpoints and logs go"),
    lake_root: str | None = LakeOption,
) -> None:
    """Train the agent on a feature snapshot (CUDA when present); prints the model id."""
    from dagster_project.assets.agent import agent_model

    if config is not None and not config.is_file():
        raise CliError(f"--config {config}: no such file")
    cfg = {"snapshot_id": snapshot, "config_file": str(config or ""), "total_steps": steps, "seed": seed}
    meta = run_asset(agent_model, {**cfg, "runs_root": runs_root}, open_lake(lake_root), "training")
    typer.echo(f"model {meta['model_id']}: {meta.get('steps')} steps, {meta.get('updates')} updates, "
               f"{meta.get('wall_s', 0):.0f} s on {meta.get('device')}")  # fmt: skip
    if meta.get("stand_aside"):
        typer.secho(
            f"no network beat standing aside on validation (best network's mean PnL {meta.get('best_val_pnl')}): "
            "this run delivers no strategy; `scalper evaluate` shows the network beside it, export refuses it",
            fg="yellow",
            err=True,
        )
    typer.echo(meta["model_id"])


@app.command("evaluate")
def evaluate_cmd(
    model: str = typer.Option("", help="Model id (default: the newest trained model)"),
    max_episodes: int = typer.Option(0, help="0: every non-overlapping test window"),
    runs_root: str = typer.Option("runs"),
    reports_root: str = typer.Option("reports"),
    lake_root: str | None = LakeOption,
) -> None:
    """Out-of-sample evaluation against buy-and-hold, TWAP, symmetric MM, Avellaneda-Stoikov and random."""
    from agent.evaluate import comparison_table
    from dagster_project.assets.agent import agent_evaluation

    cfg = {
        "model_id": model,
        "runs_root": runs_root,
        "reports_root": reports_root,
        "max_episodes": max_episodes,
    }
    meta = run_asset(agent_evaluation, cfg, open_lake(lake_root), "evaluation")
    report = json.loads((Path(reports_root) / meta["model_id"] / "report.json").read_text())
    typer.echo(comparison_table(report))
    typer.echo(f"\nreport and plots: {Path(reports_root) / meta['model_id']}/")


@app.command("export")
def export_cmd(
    model: str = typer.Option("", help="Model id (default: the newest trained model)"),
    runs_root: str = typer.Option("runs"),
    reports_root: str = typer.Option("reports"),
    lake_root: str | None = LakeOption,
) -> None:
    """TorchScript + ONNX bundle (checked against torch with onnxruntime) and a model registry entry."""
    from dagster_project.assets.agent import agent_export

    cfg = {"model_id": model, "runs_root": runs_root, "reports_root": reports_root}
    meta = run_asset(agent_export, cfg, open_lake(lake_root), "export")
    typer.echo(f"bundle: {meta['bundle']}  (ONNX max |diff| {meta['onnx_max_abs_diff']:.1e}, "
               f"latency {meta['latency_us']}, registry version {meta['registry_version']})")  # fmt: skip


@app.command()
def hpo(
    trials: int = typer.Option(20),
    storage: str = typer.Option("sqlite:///runs/optuna.db", help="Optuna RDB storage URL"),
    snapshot: str | None = typer.Option(
        None, help="Train and validate on this snapshot (default: synthetic)"
    ),
    steps_per_trial: int = typer.Option(20_000),
    study: str = typer.Option("scalper"),
    lake_root: str | None = LakeOption,
) -> None:
    """Optuna search (TPE + median pruning, RDB storage) over regime-aware validation windows."""
    import dataclasses

    from agent.hpo import HPOConfig, run_hpo
    from agent.train import load_config

    base = load_config()
    if snapshot:
        data = dataclasses.replace(
            base.data, source="snapshot", snapshot_id=snapshot, lake_root=open_lake(lake_root).root
        )
        base = dataclasses.replace(base, data=data)
    if storage.startswith("sqlite:///"):
        Path(storage.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    config = HPOConfig(
        base=base, trials=trials, storage=storage, study_name=study, steps_per_trial=steps_per_trial
    )
    typer.echo(json.dumps(run_hpo(config), indent=2, default=str))


if __name__ == "__main__":
    main()
