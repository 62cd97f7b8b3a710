"""The `scalper-dbt` executable: dbt's own command line, ending without the interpreter's teardown.

After a `dbt build` has written its results, a normal exit spends a quarter of a second tearing down the
interpreter (freeing the objects of dbt, agate and the DuckDB adapter one by one): the time a build of a 100 ms day
spends outside its models goes from 2.18 to 1.93 s (medians of 4 alternating pairs, measured as
benchmarks/bench_features.py measures a build).  Here the DuckDB database is closed explicitly (its checkpoint,
which dbt-duckdb's atexit hook leaves to garbage collection), the atexit handlers run, the standard streams are
flushed, and the process ends with os._exit and dbt's exit code.  Arguments, output and exit codes are dbt's:
`scalper-dbt --version` prints dbt's versions (dagster-dbt reads them); feature_build.dbt_executable picks this
executable when it is installed.  It lives here, with the other dbt glue, because feature_store imports no dbt.

A `build` or `run` writes manifest.json once, when its nodes are done: dbt writes it right after parsing and again
there (with the run's compiled code, GraphRunnableTask.run), and the first copy, overwritten by the second, cost a
build 0.1 s before its first model (the serializers of every node class, 0.8 MB of JSON).  While such a run goes
on, manifest.json is the previous run's.

Three things shorten the start and the compiling of every run, none changing what dbt does:
- mashumaro (dbt's dataclass serializer) generates the to_dict / from_dict code of each class when it is
  defined; dbt's own classes ask for that on first use (lazy_compilation), and here every class does, since most
  are never serialized in a run: importing dbt takes 1.32 instead of 1.57 s (medians of 4 alternating runs);
- compiled Jinja templates, the compiled code generated for dbt's dataclasses, the JSON schemas dbt validates
  its configuration with and the manifest read from the partial-parse state are kept between runs, in dbt's target
  folder (dagster_project/dbt_caches.py);
- Python's garbage collector is off until the manifest is loaded, and what is alive then is frozen
  (_collect_garbage_from_here): 0.32 -> 0.09 s of collections in a build of a 100 ms day.
"""

from __future__ import annotations

import atexit
import gc
import os
import sys


def _exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)  # what SystemExit would print for a message
    return 1


def _close_duckdb() -> None:
    """Close the run's DuckDB database (its final checkpoint) if dbt-duckdb opened one."""
    connections = sys.modules.get("dbt.adapters.duckdb.connections")
    if connections is None:
        return
    manager = connections.DuckDBConnectionManager
    env = manager._ENV  # dbt-duckdb keeps the run's one environment here; no public accessor
    if env is not None:
        env.close()
    manager.close_all_connections()


# dbt commands whose task writes manifest.json again once its nodes are done (GraphRunnableTask.run)
_MANIFEST_WRITTEN_AT_END = ("build", "run")


def _wrap_parse_manifest() -> None:
    """dbt's parse step (requires.parse_manifest) writes manifest.json only for commands that do not write it again
    at their end, and turns the garbage collector on once the manifest is loaded (_collect_garbage_from_here)."""
    import click
    from dbt.cli import requires

    parse_manifest = requires.parse_manifest

    def parse_manifest_wrapped(runtime_config, write_perf_info, write, write_json, active_integrations):
        context = click.get_current_context(silent=True)
        if context is not None and context.command.name in _MANIFEST_WRITTEN_AT_END:
            write_json = False
        manifest = parse_manifest(runtime_config, write_perf_info, write, write_json, active_integrations)
        _collect_garbage_from_here()
        return manifest

    requires.parse_manifest = parse_manifest_wrapped


def _collect_garbage_from_here() -> None:
    """Python's cyclic garbage collector, off from the start of the run (main), on again once the manifest is
    loaded, with everything alive then frozen: the imports and the manifest are a heap of long-lived objects that
    the collector would otherwise traverse again and again (0.3 s a build, 0.2 s of it before the first model)."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


def main() -> None:
    gc.disable()  # until the manifest is loaded: _collect_garbage_from_here
    import mashumaro.config

    mashumaro.config.BaseConfig.lazy_compilation = True  # before dbt defines its classes

    from dagster_project import dbt_caches

    save_caches = dbt_caches.install(dbt_caches.target_path(sys.argv[1:]))

    _wrap_parse_manifest()
    from dbt.cli.main import cli

    try:
        cli(prog_name="dbt")
        code = 0
    except SystemExit as exc:
        code = _exit_code(exc)
    except BaseException:
        # an error dbt itself did not turn into an exit code: the ordinary traceback and exit, not a fast one
        _close_duckdb()
        raise
    try:
        _close_duckdb()
    except Exception as exc:  # a failed close must not hide dbt's result, but is reported
        print(f"scalper-dbt: closing the DuckDB warehouse failed: {exc}", file=sys.stderr)
        code = code or 1
    try:
        save_caches()
    except OSError as exc:  # a cache that cannot be written costs the next run time, not this run its result
        print(f"scalper-dbt: writing its caches to dbt's target folder failed: {exc}", file=sys.stderr)
    # what a normal exit runs before the teardown: the atexit handlers (logging's flush, multiprocessing's release of
    # the semaphores dbt's connection manager created, which its resource tracker would otherwise report as leaked)
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
