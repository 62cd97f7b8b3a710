"""Caches across runs of what dbt derives the same way in every run, for `scalper-dbt` (dagster_project/dbt_cli.py).

Partial parsing keeps dbt's manifest between runs, but not four things each run rebuilds from unchanged inputs:
- the compiled Jinja templates: Jinja lexes and parses every macro and model dbt renders, generates Python source
  from it and compiles that; a build of one day partition spent 0.45 s of its Python on the same few hundred
  templates as the run before (py-spy, a build of a 100 ms day);
- the JSON schemas of dbt's configuration classes (profile credentials, project, flags, packages), which dbt builds
  from the dataclasses with mashumaro to validate its configuration: 0.3 s before the first model, every run;
- the Python code generated for dbt's ~1,500 dataclasses: `dataclasses` writes each class's __init__, __eq__, ...
  and mashumaro its (de)serializers as source text and exec()s it, ~2,900 compilations of the same text every run,
  most while dbt is imported: importing dbt takes 0.99 instead of 1.35-1.51 s with them served compiled (4 runs).
- the manifest of the partial-parse state: dbt reads it from partial_parse.msgpack into its dataclasses, which
  first generates the deserializers of ~20 node classes (0.1 s before the first model); here the objects read
  from that file are kept pickled, keyed by the file's bytes, and a run reading the same file gets them unpickled.
Here `jinja2.Environment.compile`, `dbtClassMixin.json_schema` and `Manifest.from_msgpack` look their result up
first, and the two modules that exec() generated code get an `exec` that looks up the compiled code by its source.
This is what Jinja's own bytecode cache does for templates from a loader, and Python's for modules; dbt renders
strings and the dataclass machinery execs them, which neither cache sees.

A template is keyed by a digest of its source and of everything in its environment that shapes the generated code,
with Jinja's and Python's versions; generated code by its source and Python's bytecode version (compiled as exec()
compiles it: the two modules have no __future__ imports to inherit); a schema by its class and the versions of the
packages that define such classes (dbt-core, dbt-common, dbt-adapters, dbt-duckdb, mashumaro); the manifest by the
bytes it was read from, those versions and Python's.  So a stale entry can only be missed, never hit.  Each cache
is one file in dbt's target folder (beside its partial-parse state), holding the entries of the last run that had
to add one: it does not grow with old versions.  DBT_MACRO_DEBUGGING
(dbt's own Jinja debugging, which rewrites compiled code) turns the template cache off.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import marshal
import os
import sys
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

TEMPLATES_FILE = "jinja_code.marshal"
GENERATED_CODE_FILE = "generated_code.marshal"
SCHEMAS_FILE = "json_schemas.marshal"
MANIFEST_FILE = "partial_parse_manifest.marshal"
# the distributions whose classes the cached JSON schemas and partial-parse manifest describe: their versions key them
_DBT_DISTRIBUTIONS = ("dbt-core", "dbt-common", "dbt-adapters", "dbt-duckdb", "mashumaro")
_SCHEMA_MODULES = ("dbt.", "dbt_common.")


def target_path(argv: Sequence[str], environ: dict[str, str] | None = None) -> Path:
    """dbt's target folder for this command line: --target-path, else DBT_TARGET_PATH, else <project dir>/target
    (the project's default, which dbt/dbt_project.yml keeps)."""
    environ = os.environ if environ is None else environ
    found = _option(argv, "--target-path") or environ.get("DBT_TARGET_PATH")
    if found:
        return Path(found)
    project = _option(argv, "--project-dir") or environ.get("DBT_PROJECT_DIR") or "."
    return Path(project) / "target"


def _option(argv: Sequence[str], name: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg[len(name) + 1 :]
    return None


def install(folder: Path) -> Callable[[], None]:
    """Serve Jinja compilations, generated dataclass code, dbt's JSON schemas and its partial-parse manifest from the
    cache files in `folder` (call it before dbt is imported: its classes are defined then); returns the function that
    writes them back once the run is done (a file only when this run added an entry)."""
    stores = [
        _Store(folder / GENERATED_CODE_FILE),
        _Store(folder / SCHEMAS_FILE),
        _Store(folder / MANIFEST_FILE),
    ]
    _cache_generated_code(stores[0])
    _cache_json_schemas(stores[1])
    _cache_partial_parse_manifest(stores[2])
    if not os.environ.get("DBT_MACRO_DEBUGGING"):
        stores.append(_Store(folder / TEMPLATES_FILE))
        _cache_jinja_templates(stores[-1])

    def save() -> None:
        for store in stores:
            store.save()

    return save


class _Store:
    """One marshal file of entries: the entries of the file, those this run used, and whether it added one."""

    def __init__(self, path: Path):
        self.path = path
        try:
            entries = marshal.loads(path.read_bytes())
        except (OSError, EOFError, ValueError, TypeError):
            entries = {}
        self._stored = entries if isinstance(entries, dict) else {}
        self._used: dict[Any, Any] = {}
        self._added = False

    def get(self, key):
        value = self._stored.get(key)
        if value is not None:
            self._used[key] = value
        return value

    def put(self, key, value) -> None:
        self._used[key] = value
        self._added = True

    def save(self) -> None:
        if not self._added:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(f"{self.path.name}.{os.getpid()}")
        partial.write_bytes(marshal.dumps(self._used))
        os.replace(partial, self.path)  # atomic: a concurrent run reads the old file or this one


def _unmarshal(data: bytes | None):
    """The code object of a cache entry; None for no entry or a damaged one (compiled again)."""
    if data is None:
        return None
    try:
        return marshal.loads(data)
    except (EOFError, ValueError, TypeError):
        return None


def _cache_jinja_templates(store: _Store) -> None:
    import jinja2

    compile_uncached = jinja2.Environment.compile

    def compile(self, source, name=None, filename=None, raw=False, defer_init=False):
        if raw or not isinstance(source, str):
            return compile_uncached(self, source, name, filename, raw, defer_init)
        key = _template_digest(self, source, name, filename, defer_init)
        code = _unmarshal(store.get(key))
        if code is not None:
            return code
        code = compile_uncached(self, source, name, filename, raw, defer_init)
        store.put(key, marshal.dumps(code))
        return code

    jinja2.Environment.compile = compile


def _template_digest(env, source: str, name, filename, defer_init: bool) -> bytes:
    """Everything the generated code depends on: the source and the compile arguments, the environment's class,
    code generator, syntax (as Jinja keys its lexer), extensions and options, Jinja's version and the bytecode's."""
    import jinja2

    finalize = env.finalize
    shape = (
        jinja2.__version__,
        sys.implementation.cache_tag,
        f"{type(env).__module__}.{type(env).__qualname__}",
        f"{env.code_generator_class.__module__}.{env.code_generator_class.__qualname__}",
        sorted(env.extensions),
        env.block_start_string,
        env.block_end_string,
        env.variable_start_string,
        env.variable_end_string,
        env.comment_start_string,
        env.comment_end_string,
        env.line_statement_prefix,
        env.line_comment_prefix,
        env.trim_blocks,
        env.lstrip_blocks,
        env.newline_sequence,
        env.keep_trailing_newline,
        env.optimized,
        env.is_async,
        env.autoescape if isinstance(env.autoescape, bool) else repr(env.autoescape),
        None if finalize is None else getattr(finalize, "__qualname__", repr(finalize)),
        name,
        filename,
        defer_init,
    )
    digest = hashlib.blake2b(repr(shape).encode(), digest_size=20)
    digest.update(source.encode())
    return digest.digest()


# the modules that exec() the source text they generate for every dataclass
_CODE_GENERATING_MODULES = ("dataclasses", "mashumaro.core.meta.code.builder")


def _cache_generated_code(store: _Store) -> None:
    import importlib

    tag = sys.implementation.cache_tag.encode()

    def exec_cached(source, globals=None, locals=None, /, **kwargs):
        if globals is None:  # as exec(): the caller's namespaces, not this function's
            caller = sys._getframe(1)
            globals = caller.f_globals
            locals = caller.f_locals if locals is None else locals
        if not isinstance(source, str):
            return exec(source, globals, locals, **kwargs)
        key = hashlib.blake2b(tag + source.encode(), digest_size=20).digest()
        code = _unmarshal(store.get(key))
        if code is None:
            # what exec(source) compiles; dont_inherit: not this module's __future__ flags (the callers have none)
            code = compile(source, "<string>", "exec", dont_inherit=True)
            store.put(key, marshal.dumps(code))
        return exec(code, globals, locals, **kwargs)

    for name in _CODE_GENERATING_MODULES:
        # a module-level name shadows the builtin for that module's code only
        importlib.import_module(name).exec = exec_cached


def _cache_json_schemas(store: _Store) -> None:
    from dbt_common.dataclass_schema import dbtClassMixin

    versions = _distribution_versions()
    json_schema_uncached = dbtClassMixin.json_schema.__func__

    @functools.lru_cache  # as dbt's own: one schema per class and run
    def json_schema(cls):
        if not cls.__module__.startswith(_SCHEMA_MODULES):
            return json_schema_uncached(cls)
        key = f"{versions}:{cls.__module__}.{cls.__qualname__}"
        schema = store.get(key)
        if schema is None:
            schema = json_schema_uncached(cls)
            try:
                marshal.dumps(schema)
            except ValueError:  # a value marshal cannot keep: not cached
                return schema
            store.put(key, schema)
        return schema

    dbtClassMixin.json_schema = classmethod(json_schema)


def _distribution_versions() -> str:
    return ",".join(f"{d}={metadata.version(d)}" for d in _DBT_DISTRIBUTIONS)


def _cache_partial_parse_manifest(store: _Store) -> None:
    """`Manifest.from_msgpack` (dbt reads partial_parse.msgpack with it) serves the manifest read before from the same
    bytes: the state of the object it returned, pickled (but its lock, which is made anew as the dataclass makes
    it).  Entries are keyed by the bytes, the call's keyword arguments, the versions of the packages whose classes
    the manifest holds and Python's; one that cannot be unpickled is read from the bytes again."""
    import pickle

    from dbt.contracts.graph.manifest import Manifest

    lock_field = Manifest.__dataclass_fields__["_lock"]
    tag = f"{_distribution_versions()},{sys.implementation.cache_tag}".encode()
    uncached = [Manifest.from_msgpack]  # mashumaro may replace it with the compiled method on its first call

    def restore(data: bytes | None) -> Manifest | None:
        if data is None:
            return None
        try:
            state = pickle.loads(data)
        except Exception:  # a damaged entry: read from the bytes
            return None
        if not isinstance(state, dict):
            return None
        manifest = Manifest.__new__(Manifest)
        manifest.__dict__.update(state)
        manifest._lock = lock_field.default_factory()
        return manifest

    def from_msgpack(cls, data, **kwargs):
        if cls is not Manifest or not isinstance(data, bytes):
            return uncached[0].__func__(cls, data, **kwargs)
        options = sorted(
            (name, getattr(value, "__qualname__", repr(value))) for name, value in kwargs.items()
        )
        key = hashlib.blake2b(tag + repr(options).encode() + data, digest_size=20).digest()
        manifest = restore(store.get(key))
        if manifest is not None:
            return manifest
        manifest = uncached[0](data, **kwargs)
        if Manifest.__dict__.get("from_msgpack") is not cached:
            # mashumaro compiled the method on this first call and set it on the class: serve around that one
            uncached[0] = Manifest.from_msgpack
            Manifest.from_msgpack = cached
        state = dict(manifest.__dict__, _lock=None)  # the lock's place kept, for a new one
        with contextlib.suppress(Exception):  # a value pickle cannot keep: not cached
            store.put(key, pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))
        return manifest

    cached = classmethod(from_msgpack)
    Manifest.from_msgpack = cached
