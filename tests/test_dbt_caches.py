"""scalper-dbt's caches across runs (dagster_project/dbt_caches.py): a template, generated dataclass code, JSON
schema or partial-parse manifest a run compiled or read is served to the next run from the target folder without
compiling or decoding it again, and gives what compiling or decoding gives; a changed template or manifest file,
another template syntax or a damaged cache file are compiled or decoded afresh, never served stale."""

from __future__ import annotations

import dataclasses
import importlib

import jinja2
import pytest
from dbt.contracts.graph.manifest import Manifest
from dbt.parser.manifest import extended_mashumuro_decoder
from dbt_common.clients.jinja import get_template
from dbt_common.dataclass_schema import dbtClassMixin
from feature_lake import shared_lake

from dagster_project import dbt_caches

TEMPLATE = (
    "{% set name = who | upper %}hello {{ name }}{% for i in range(2) %} {{ i }}{% endfor %}{% do [] %}"
)


@pytest.fixture
def run(monkeypatch, request):
    """Installs the caches as a scalper-dbt run would; each call is a new run (the functions the caches replace are
    restored after the test)."""
    monkeypatch.setattr(jinja2.Environment, "compile", jinja2.Environment.compile)
    monkeypatch.setattr(dbtClassMixin, "json_schema", dbtClassMixin.json_schema)
    for name in dbt_caches._CODE_GENERATING_MODULES:  # the builtin exec again after the test
        monkeypatch.setattr(importlib.import_module(name), "exec", exec, raising=False)
    originals = (jinja2.Environment.compile, dbtClassMixin.__dict__["json_schema"])
    # Manifest.from_msgpack as it is now (inherited until mashumaro compiles it on its first call), before each run
    # and after the test
    msgpack_reader = Manifest.__dict__.get("from_msgpack")

    def restore_msgpack_reader():
        if msgpack_reader is not None:
            Manifest.from_msgpack = msgpack_reader
        elif "from_msgpack" in vars(Manifest):
            delattr(Manifest, "from_msgpack")

    request.addfinalizer(restore_msgpack_reader)
    generated = []
    generate = jinja2.Environment._generate

    def counting_generate(self, *args, **kwargs):
        generated.append(args[0] if args else None)
        return generate(self, *args, **kwargs)

    monkeypatch.setattr(jinja2.Environment, "_generate", counting_generate)

    def new_run(folder):
        jinja2.Environment.compile = originals[0]
        dbtClassMixin.json_schema = originals[1]
        restore_msgpack_reader()
        originals[1].__func__.cache_clear()  # dbt's own per-process cache
        generated.clear()
        return dbt_caches.install(folder), generated

    return new_run


def _render(source: str = TEMPLATE) -> str:
    return get_template(source, {}).render({"who": "dbt"})


def test_a_template_compiled_once_is_served_to_the_next_run(run, tmp_path):
    save, generated = run(tmp_path)
    first = _render()
    assert first.startswith("hello DBT") and generated  # compiled
    save()
    assert (tmp_path / dbt_caches.TEMPLATES_FILE).exists()
    _, generated = run(tmp_path)
    assert _render() == first
    assert not generated  # served from the file


def test_a_changed_template_or_syntax_is_compiled_again(run, tmp_path):
    save, _ = run(tmp_path)
    _render()
    save()
    _, generated = run(tmp_path)
    assert _render(TEMPLATE + "!").endswith("!")
    assert generated
    generated.clear()
    other_syntax = jinja2.Environment(block_start_string="<%", block_end_string="%>")
    assert other_syntax.from_string("{% x %}<% if 1 %>y<% endif %>").render() == "{% x %}y"
    assert generated


def test_a_damaged_cache_file_is_compiled_around(run, tmp_path):
    (tmp_path / dbt_caches.TEMPLATES_FILE).write_bytes(b"not marshal data")
    save, generated = run(tmp_path)
    assert _render().startswith("hello DBT") and generated
    save()
    _, generated = run(tmp_path)
    _render()
    assert not generated


def test_macro_debugging_turns_the_template_cache_off(run, tmp_path, monkeypatch):
    monkeypatch.setenv("DBT_MACRO_DEBUGGING", "1")
    save, generated = run(tmp_path)
    _render()
    save()
    assert generated and not (tmp_path / dbt_caches.TEMPLATES_FILE).exists()


def test_json_schemas_are_served_to_the_next_run(run, tmp_path, monkeypatch):
    from dbt.contracts.project import ProjectFlags

    save, _ = run(tmp_path)
    schema = ProjectFlags.json_schema()
    assert schema["type"] == "object" and "properties" in schema
    save()
    built = []
    monkeypatch.setattr(
        "mashumaro.jsonschema.builder.get_schema", lambda *a, **k: built.append(a) or pytest.fail("rebuilt")
    )
    run(tmp_path)
    assert ProjectFlags.json_schema() == schema
    ProjectFlags.validate({"send_anonymous_usage_stats": False})
    with pytest.raises(Exception, match="send_anonymous_usage_stats"):
        ProjectFlags.validate({"send_anonymous_usage_stats": "not a bool"})
    assert not built


def _define_classes():
    """A dataclass and a mashumaro class defined now (their methods generated and exec'd), and one use of each."""
    from mashumaro import DataClassDictMixin

    # (made, not declared: this module's annotations are strings, which a local class could not resolve)
    level = dataclasses.make_dataclass(
        "Level", [("price", float), ("size", float, dataclasses.field(default=0.0))], frozen=True, order=True
    )
    book = dataclasses.make_dataclass(
        "Book", [("symbol", str), ("bids", list[level])], bases=(DataClassDictMixin,)
    )

    read = book.from_dict({"symbol": "BTCUSDT", "bids": [{"price": 1.5, "size": 2.0}, {"price": 1.0}]})
    return level(1.0) < level(1.5, 1.0), read.bids[1], read.to_dict()


def test_generated_dataclass_code_is_served_to_the_next_run(run, tmp_path, monkeypatch):
    save, _ = run(tmp_path)
    first = _define_classes()
    assert first[0] is True  # the generated ordering
    assert repr(first[1]) == "Level(price=1.0, size=0.0)"  # the generated __init__ default and __repr__
    assert first[2] == {
        "symbol": "BTCUSDT",
        "bids": [{"price": 1.5, "size": 2.0}, {"price": 1.0, "size": 0.0}],
    }
    save()
    assert (tmp_path / dbt_caches.GENERATED_CODE_FILE).exists()
    run(tmp_path)
    monkeypatch.setattr(dbt_caches, "compile", lambda *a, **k: pytest.fail("compiled again"), raising=False)
    again = _define_classes()
    assert again[0] is True and again[2] == first[2] and repr(again[1]) == repr(first[1])


def test_changed_or_damaged_generated_code_is_compiled_again(run, tmp_path, monkeypatch):
    (tmp_path / dbt_caches.GENERATED_CODE_FILE).write_bytes(b"not marshal data")
    save, _ = run(tmp_path)
    _define_classes()
    save()
    run(tmp_path)
    compiled = []
    monkeypatch.setattr(
        dbt_caches, "compile", lambda *a, **k: compiled.append(a[0]) or compile(*a, **k), raising=False
    )

    @dataclasses.dataclass
    class Other:  # new generated code: compiled, and right
        x: int
        y: int = 2

    assert Other(1) == Other(1, 2) and compiled


def _read_manifest(data: bytes, decoded: list) -> Manifest:
    """The manifest in partial-parse bytes, read as dbt reads them (its decoder), counting the decodings."""

    def decoder(raw):
        decoded.append(len(raw))
        return extended_mashumuro_decoder(raw)

    return Manifest.from_msgpack(data, decoder=decoder)


def _state(manifest: Manifest) -> dict[str, str]:
    # by repr: a FileHash named 'none' equals no other (dbt's __eq__), itself included; the lock is the process's own
    return {name: repr(value) for name, value in vars(manifest).items() if name != "_lock"}


def test_the_partial_parse_manifest_is_served_to_the_next_run(run, tmp_path):
    data = (shared_lake().root / ".dbt_target" / "partial_parse.msgpack").read_bytes()
    decoded = []
    save, _ = run(tmp_path)
    first = _read_manifest(data, decoded)
    assert decoded and len(first.nodes) > 20
    # dbt changes what it read (its invocation id): the next run is served what was read, not that
    first.metadata.invocation_id = "changed by the run"
    save()
    assert (tmp_path / dbt_caches.MANIFEST_FILE).exists()

    run(tmp_path)
    decoded.clear()
    served = _read_manifest(data, decoded)
    assert not decoded  # unpickled, not decoded
    fresh = Manifest.from_msgpack(data, decoder=extended_mashumuro_decoder)
    assert _state(served) == _state(fresh) and list(vars(served)) == list(vars(fresh))
    assert type(served._lock) is type(fresh._lock) and served._lock is not fresh._lock
    assert served.nodes is not _read_manifest(data, decoded).nodes  # a new object each time


def test_a_changed_manifest_file_or_damaged_cache_is_decoded_again(run, tmp_path):
    data = (shared_lake().root / ".dbt_target" / "partial_parse.msgpack").read_bytes()
    decoded = []
    save, _ = run(tmp_path)
    _read_manifest(data, decoded)
    save()
    changed = Manifest.from_msgpack(data, decoder=extended_mashumuro_decoder)
    changed.metadata.project_name = "another_project"
    other = changed.to_msgpack()

    run(tmp_path)
    decoded.clear()
    assert _read_manifest(other, decoded).metadata.project_name == "another_project" and decoded

    (tmp_path / dbt_caches.MANIFEST_FILE).write_bytes(b"not marshal data")
    run(tmp_path)
    decoded.clear()
    again = _read_manifest(data, decoded)
    assert decoded and again.metadata.project_name == "scalper_features" and len(again.nodes) > 20


@pytest.mark.parametrize(
    ("argv", "environ", "expected"),
    [
        (["build", "--target-path", "/t", "--project-dir", "/p"], {}, "/t"),
        (["build", "--target-path=/t"], {"DBT_TARGET_PATH": "/e"}, "/t"),
        (["build"], {"DBT_TARGET_PATH": "/e"}, "/e"),
        (["build", "--project-dir", "/p"], {}, "/p/target"),
        (["build"], {}, "target"),
    ],
)
def test_the_caches_live_in_dbts_target_folder(argv, environ, expected):
    assert str(dbt_caches.target_path(argv, environ)) == expected
