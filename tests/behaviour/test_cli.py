"""The ``datastore-lite`` command (issue #7 item 4; issue #3 ``indexes status|build|vacuum``).

Most tests run ``main([...])`` in-process and read stdout/stderr with capsys; a few run the
installed ``.venv/bin/datastore-lite`` in a subprocess (pipes, exit codes, stdin). Every
command runs on a SQLite file and on PostgreSQL (``shared_url``): the command opens its own
connections, as it would next to a running app.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import math
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datastore_lite import Client, Entity, GeoPoint, Key, exceptions
from datastore_lite import cli as cli_module
from datastore_lite._cli_format import display_width, format_index, format_size, format_value
from datastore_lite._export import (
    JsonFormError,
    dumps_entity,
    entity_from_json,
    entity_to_json,
    loads_entity,
    value_from_json,
    value_to_json,
)
from datastore_lite._progress import Progress
from datastore_lite.cli import build_parser, main
from tests.strategies import (
    INT64_MAX,
    INT64_MIN,
    canonical,
    complete_keys,
    entities,
    expected_after_store,
    namespaces,
)

ROOT = Path(__file__).resolve().parents[2]
EXE = ROOT / ".venv" / "bin" / "datastore-lite"
PROJECT = "test-proj"
_ENV = (
    "DATASTORE_LITE_URL",
    "DATASTORE_LITE_INDEX_YAML",
    "DATASTORE_LITE_PROFILE",
    "DATASTORE_LITE_CONSISTENCY",
    "DATASTORE_LITE_WRITE_LIMIT",
    "DATASTORE_LITE_SEED",
    "DATASTORE_DATASET",
    "DATASTORE_PROJECT_ID",
    "GOOGLE_CLOUD_PROJECT",
)

INDEX_YAML = """\
indexes:
- kind: Photo
  properties:
  - name: tags
  - name: date
    direction: desc
- kind: Photo
  ancestor: yes
  properties:
  - name: likes
"""


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No configuration leaks in: a fresh working directory and no datastore env vars."""
    monkeypatch.chdir(tmp_path)
    for name in _ENV:
        monkeypatch.delenv(name, raising=False)


Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Run:
    """``run(*argv, stdin=None)`` -> (exit status, stdout, stderr) of ``main`` in-process."""

    def call(*argv: str, stdin: str | bytes | None = None) -> tuple[int, str, str]:
        capsys.readouterr()
        saved = sys.stdin
        if stdin is not None:
            data = stdin.encode("utf-8") if isinstance(stdin, str) else stdin
            sys.stdin = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8")
        try:
            status = main(list(argv))
        finally:
            sys.stdin = saved
        out, err = capsys.readouterr()
        return status, out, err

    return call


@pytest.fixture
def clients(shared_url: str) -> Iterator[Callable[..., Client]]:
    """Clients on the store under test (closed at the end)."""
    made: list[Client] = []

    def make(url: str | None = None, **kwargs: Any) -> Client:
        kwargs.setdefault("project", PROJECT)
        kwargs.setdefault("consistency", "strong")
        kwargs.setdefault("index_yaml", os.devnull)
        client = Client(url=url or shared_url, **kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def _one_error_line(err: str) -> str:
    """The stderr of a failed command: exactly one line, the error, no traceback."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("datastore-lite: error: "), err
    assert "Traceback" not in err
    return lines[0]


def _photos(client: Client, count: int, user: str = "alice") -> list[Entity]:
    parent = client.key("User", user)
    out = []
    for i in range(1, count + 1):
        photo = Entity(client.key("Photo", i, parent=parent), exclude_from_indexes=("image",))
        photo.update(
            caption=f"photo {i}",
            likes=i,
            tags=["beach", "sun"] if i % 2 else ["city"],
            date=dt.datetime(2020, 1, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=i),
            image=b"\x89PNG" + bytes([i % 256]),
        )
        out.append(photo)
    for start in range(0, len(out), 500):
        client.put_multi(out[start : start + 500])
    return out


# -- help, usage, configuration ------------------------------------------------------------------

COMMANDS = [
    [],
    ["gql"],
    ["indexes"],
    ["indexes", "status"],
    ["indexes", "build"],
    ["indexes", "vacuum"],
    ["export"],
    ["import"],
    ["stats"],
    ["demo"],
    ["demo", "stale-reads"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "main")
def test_help_explains_every_command_with_examples(run: Run, command: list[str]) -> None:
    status, out, err = run(*command, "--help")
    assert status == 0, err
    assert out.startswith("usage: datastore-lite")
    assert "examples:" in out
    assert "datastore-lite " in out.split("examples:")[1]


def _command_lines(text: str) -> list[list[str]]:
    """The argv of every ``datastore-lite ...`` command in shell text (pipes, ``&&``,
    redirections, ``VAR=value`` prefixes, comments and line continuations handled)."""
    found = []
    for line in text.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        commands: list[list[str]] = [[]]
        skip = False
        for token in lexer:
            if skip:
                skip = False
            elif token in ("|", "||", "&&", ";", "&"):
                commands.append([])
            elif token in (">", ">>", "<", "2>"):
                skip = True
            else:
                commands[-1].append(token)
        for words in commands:
            while words and re.match(r"^[A-Z_]+=", words[0]):
                words = words[1:]
            if words and words[0] == "datastore-lite":
                found.append(words[1:])
    return found


def test_help_examples_parse(run: Run) -> None:
    # every example in every --help is a valid command line
    checked = 0
    for command in COMMANDS:
        _, out, _ = run(*command, "--help")
        for argv in _command_lines(out.split("examples:")[1].split("\n\n")[0]):
            build_parser(argv).parse_args(argv)
            checked += 1
    assert checked >= 20


def test_version(run: Run) -> None:
    status, out, _ = run("--version")
    assert status == 0 and out.startswith("datastore-lite ")


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["bogus"],
        ["indexes"],
        ["gql"],
        ["import", "--batch-size", "501", "x"],
        ["--profile", "x"],
    ],
)
def test_usage_errors_exit_2_without_traceback(run: Run, argv: list[str]) -> None:
    status, out, err = run(*argv)
    assert status == 2
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("datastore-lite")


def test_global_options_before_or_after_the_command(
    run: Run, clients: Callable[..., Client], shared_url: str
) -> None:
    _photos(clients(), 3)
    before = run("--url", shared_url, "--project", PROJECT, "stats", "--format", "json")
    after = run("stats", "--url", shared_url, "--format", "json", "--project", PROJECT)
    assert before[0] == after[0] == 0
    assert json.loads(before[1]) == json.loads(after[1])
    assert json.loads(before[1])[0]["entities"] == 3


def test_url_from_the_environment(
    run: Run, clients: Callable[..., Client], shared_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _photos(clients(), 2)
    monkeypatch.setenv("DATASTORE_LITE_URL", shared_url)
    status, out, err = run("stats", "--format", "json")
    assert status == 0, err
    assert json.loads(out)[0]["entities"] == 2


def test_default_url_is_datastore_lite_db_in_the_working_directory(
    run: Run, tmp_path: Path
) -> None:
    client = Client(project=PROJECT, url=f"sqlite:///{tmp_path}/datastore_lite.db")
    client.put(Entity(client.key("Thing", 1)))
    client.close()
    status, out, _ = run("stats", "--format", "json")
    assert status == 0
    assert json.loads(out) == [
        {
            "project": PROJECT,
            "database": "",
            "namespace": "",
            "kind": "Thing",
            "entities": 1,
            "bytes": json.loads(out)[0]["bytes"],
            "index_entries": 0,
        }
    ]


# -- gql ------------------------------------------------------------------------------------------


def test_gql_prints_an_aligned_table(
    run: Run, clients: Callable[..., Client], shared_url: str
) -> None:
    client = clients()
    _photos(client, 3)
    long = Entity(client.key("Photo", 99))
    long.update(caption="x" * 100, likes=1000)
    client.put(long)
    status, out, err = run(
        "--url", shared_url, "--project", PROJECT, "gql", "SELECT * FROM Photo ORDER BY likes"
    )
    assert status == 0, err
    lines = out.splitlines()
    header = lines[0].split()
    assert header[0] == "key"
    assert {"caption", "likes", "tags", "date", "image"} <= set(header)
    assert set(lines[1]) == {"-", " "}
    assert lines[-1] == "(4 entities)"
    rows = lines[2:-1]
    assert len(rows) == 4
    assert rows[0].startswith("Key(User, 'alice', Photo, 1)")
    assert "2020-01-01T00:01:00Z" in rows[0]
    assert "['beach', 'sun']" in rows[0]
    # columns line up: every value of a column starts where its header does
    start = lines[0].index("caption")
    assert all(row[start:].startswith(("photo", "xxx")) for row in rows)
    # numbers are right-aligned under their header
    likes_end = lines[0].index("likes") + len("likes")
    assert rows[-1][:likes_end].endswith("1000") and rows[0][:likes_end].endswith("1")
    # long values are cut
    assert "x" * 39 + "…" in rows[-1] and "x" * 41 not in rows[-1]


def test_gql_json_and_jsonl_are_the_export_form(
    run: Run, clients: Callable[..., Client], shared_url: str
) -> None:
    client = clients()
    stored = _photos(client, 3)
    status, out, _ = run(
        "--url", shared_url, "--project", PROJECT, "gql", "SELECT * FROM Photo", "--format", "jsonl"
    )
    assert status == 0
    got = [loads_entity(line) for line in out.splitlines()]
    assert [canonical(e) for e in got] == [canonical(client.get(e.key)) for e in stored if e.key]
    status, out, _ = run(
        "--url", shared_url, "--project", PROJECT, "gql", "SELECT * FROM Photo", "--format", "json"
    )
    assert [entity_from_json(obj) for obj in json.loads(out)] == got


def test_gql_limit_and_the_default_table_limit(
    run: Run, clients: Callable[..., Client], shared_url: str
) -> None:
    _photos(clients(), 1005)
    base = ["--url", shared_url, "--project", PROJECT, "gql", "SELECT __key__ FROM Photo"]
    status, out, _ = run(*base, "--limit", "2")
    assert status == 0 and out.splitlines()[-1] == "(2 entities)"
    status, out, _ = run(*base, "--limit", "3", "--format", "jsonl")
    assert len(out.splitlines()) == 3
    status, out, err = run(*base)
    assert out.splitlines()[-1] == "(1000 entities)"
    assert "--limit" in err
    status, out, _ = run(*base, "--format", "jsonl")
    assert len(out.splitlines()) == 1005


def test_gql_aggregation_prints_a_small_table(
    run: Run, clients: Callable[..., Client], shared_url: str
) -> None:
    _photos(clients(), 4)
    query = "AGGREGATE COUNT(*) AS n, SUM(likes) AS total OVER (SELECT * FROM Photo)"
    status, out, err = run("--url", shared_url, "--project", PROJECT, "gql", query)
    assert status == 0, err
    assert out.split() == ["n", "total", "-", "-----", "4", "10"]
    status, out, _ = run(
        "--url", shared_url, "--project", PROJECT, "gql", query, "--format", "json"
    )
    assert json.loads(out) == {
        "aggregateProperties": {"n": {"integerValue": "4"}, "total": {"integerValue": "10"}}
    }


def test_gql_in_a_namespace_and_project_from_env(
    run: Run, clients: Callable[..., Client], shared_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _photos(clients(project="env-proj", namespace="shop"), 2)
    monkeypatch.setenv("DATASTORE_PROJECT_ID", "env-proj")
    status, out, _ = run("--url", shared_url, "--namespace", "shop", "gql", "SELECT * FROM Photo")
    assert status == 0 and out.splitlines()[-1] == "(2 entities)"
    status, out, _ = run("--url", shared_url, "gql", "SELECT * FROM Photo")
    assert status == 0 and out.splitlines()[-1] == "(0 entities)"


def test_gql_bindings(run: Run, clients: Callable[..., Client], shared_url: str) -> None:
    _photos(clients(), 5)
    base = ["--url", shared_url, "--project", PROJECT, "gql", "--format", "jsonl"]

    def ids(query: str, *binds: str) -> list[int]:
        status, out, err = run(*base, query, *[f"--bind={b}" for b in binds])
        assert status == 0, err
        keys = [loads_entity(line).key for line in out.splitlines()]
        return [key.id for key in keys if key is not None and key.id is not None]

    assert ids("SELECT * FROM Photo WHERE likes > @n", "n=3") == [4, 5]
    assert ids("SELECT * FROM Photo WHERE likes > @1 AND likes < @2", "2=5", "1=2") == [3, 4]
    assert ids("SELECT * FROM Photo WHERE caption = @c", "c=photo 2") == [2]
    assert ids("SELECT * FROM Photo WHERE caption = @c", 'c="photo 3"') == [3]
    assert ids("SELECT * FROM Photo WHERE likes IN @l", "l=[1, 5]") == [1, 5]
    when = '{"timestampValue": "2020-01-01T00:04:00Z"}'
    assert ids("SELECT * FROM Photo WHERE date >= @d", f"d={when}") == [4, 5]
    status, _, err = run(*base, "SELECT * FROM Photo", "--bind", "oops")
    assert status == 1 and "--bind expects NAME=VALUE" in _one_error_line(err)
    status, _, err = run(*base, "SELECT * FROM Photo WHERE likes = @1", "--bind", "2=1")
    assert status == 1 and "--bind numbers must be 1..1" in _one_error_line(err)


def test_gql_syntax_error_is_one_line_with_the_position(run: Run, shared_url: str) -> None:
    status, _, err = run("--url", shared_url, "gql", "SELECT * FROM Photo ORDER BY LIMIT 5")
    assert status == 1
    line = _one_error_line(err)
    assert "line 1, column 30" in line and "LIMIT" in line


def test_gql_missing_index_is_one_line_naming_the_index(
    run: Run, clients: Callable[..., Client], shared_url: str
) -> None:
    _photos(clients(), 2)
    status, _, err = run(
        "--url",
        shared_url,
        "--project",
        PROJECT,
        "gql",
        "SELECT * FROM Photo WHERE tags = 'beach' ORDER BY date DESC",
    )
    assert status == 1
    line = _one_error_line(err)
    assert "no matching index found" in line
    assert "Photo(tags, date desc)" in line


def test_gql_uses_index_yaml_and_builds_new_indexes(
    run: Run, clients: Callable[..., Client], shared_url: str, tmp_path: Path
) -> None:
    _photos(clients(), 6)
    (tmp_path / "index.yaml").write_text(INDEX_YAML)
    status, out, err = run(
        "--url",
        shared_url,
        "--project",
        PROJECT,
        "gql",
        "SELECT * FROM Photo WHERE tags = 'beach' ORDER BY date DESC",
    )
    assert status == 0, err
    assert out.splitlines()[-1] == "(3 entities)"
    assert "built Photo(tags, date desc)" in err


# -- indexes ---------------------------------------------------------------------------------------


def _status(run: Run, url: str) -> list[dict[str, Any]]:
    status, out, err = run("--url", url, "indexes", "status", "--format", "json")
    assert status == 0, err
    result: list[dict[str, Any]] = json.loads(out)
    return result


def test_indexes_build_then_status(
    run: Run, clients: Callable[..., Client], shared_url: str, tmp_path: Path
) -> None:
    client = clients()
    _photos(client, 1200)
    yaml_path = tmp_path / "app.yaml"
    yaml_path.write_text(INDEX_YAML)
    status, out, err = run(
        "--url", shared_url, "--index-yaml", str(yaml_path), "--progress", "indexes", "build"
    )
    assert status == 0, err
    # a hand-written progress bar per index, redrawn with \r, ending at 100 %
    assert "\r[" in err
    assert re.search(r"\r\[#+\] 100% Photo\(tags, date desc\) 1200/1200", err)
    assert re.search(r"\[#*\.+\]\s+\d+% Photo\(tags, date desc\) \d+/1200", err)
    assert "Photo(ancestor, likes) 1200/1200" in err
    assert "built Photo(tags, date desc)" in err

    rows = _status(run, shared_url)
    assert rows == [
        {
            "kind": "Photo",
            "ancestor": False,
            "properties": [["tags", "asc"], ["date", "desc"]],
            "state": "serving",
            "entries": 1800,  # 600 photos with 2 tags, 600 with 1
            "note": "",
        },
        {
            "kind": "Photo",
            "ancestor": True,
            "properties": [["likes", "asc"]],
            "state": "serving",
            "entries": 2400,  # one per ancestor: the User and the Photo itself
            "note": "",
        },
    ]
    status, out, _ = run("--url", shared_url, "indexes", "status")
    assert status == 0
    lines = out.splitlines()
    assert lines[0].split() == ["kind", "ancestor", "properties", "state", "entries", "note"]
    assert re.match(r"Photo\s+no\s+tags, date desc\s+serving\s+1,800$", lines[2])
    assert re.match(r"Photo\s+yes\s+likes\s+serving\s+2,400$", lines[3])
    # the composite index now serves the query that needed it (in a new client: see
    # test_bug_running_client_sees_an_index_built_elsewhere)
    later = clients()
    query = later.query(kind="Photo", order=["-date"])
    query.add_filter(filter=_eq("tags", "beach"))
    assert len(list(query.fetch())) == 600


def _eq(name: str, value: Any) -> Any:
    from datastore_lite.query import PropertyFilter

    return PropertyFilter(name, "=", value)


def test_indexes_build_is_quiet_without_a_tty_and_idempotent(
    run: Run, clients: Callable[..., Client], shared_url: str, tmp_path: Path
) -> None:
    _photos(clients(), 10)
    (tmp_path / "index.yaml").write_text(INDEX_YAML)  # found in the working directory
    status, _, err = run("--url", shared_url, "indexes", "build")
    assert status == 0
    assert "\r" not in err and "built Photo(tags, date desc)" in err
    status, _, err = run("--url", shared_url, "indexes", "build")
    assert status == 0 and "0 built" in err
    status, _, err = run("--url", shared_url, "-q", "indexes", "build")
    assert status == 0 and err == ""


def test_indexes_status_notes_new_and_removed_definitions(
    run: Run, clients: Callable[..., Client], shared_url: str, tmp_path: Path
) -> None:
    _photos(clients(), 4)
    status, out, _ = run("--url", shared_url, "indexes", "status")
    assert status == 0 and out.startswith("no composite indexes")
    (tmp_path / "index.yaml").write_text(INDEX_YAML)
    rows = _status(run, shared_url)
    assert [r["state"] for r in rows] == ["new", "new"]
    assert all("indexes build" in r["note"] and r["entries"] is None for r in rows)
    assert run("--url", shared_url, "indexes", "build")[0] == 0
    (tmp_path / "index.yaml").write_text(INDEX_YAML.split("- kind: Photo\n  ancestor")[0])
    rows = _status(run, shared_url)
    assert [(r["ancestor"], r["note"]) for r in rows] == [
        (False, ""),
        (True, "not in index.yaml: `indexes vacuum` drops it"),
    ]


def test_indexes_vacuum_asks_first(
    run: Run, clients: Callable[..., Client], shared_url: str, tmp_path: Path
) -> None:
    client = clients()
    _photos(client, 5)
    yaml_path = tmp_path / "index.yaml"
    yaml_path.write_text(INDEX_YAML)
    assert run("--url", shared_url, "indexes", "build")[0] == 0
    yaml_path.write_text(INDEX_YAML.split("- kind: Photo\n  ancestor")[0])

    status, out, err = run("--url", shared_url, "indexes", "vacuum", "--dry-run")
    assert status == 0 and "Photo(ancestor, likes)" in out
    status, out, err = run("--url", shared_url, "indexes", "vacuum", stdin="n\n")
    assert status == 1
    assert "[y/N]" in err and "nothing dropped" in err
    assert len(_status(run, shared_url)) == 2
    status, out, err = run("--url", shared_url, "indexes", "vacuum", stdin="")  # EOF = no
    assert status == 1 and len(_status(run, shared_url)) == 2

    status, out, err = run("--url", shared_url, "indexes", "vacuum", stdin="y\n")
    assert status == 0, err
    assert "dropped 1 indexes" in err
    rows = _status(run, shared_url)
    assert [r["ancestor"] for r in rows] == [False]
    status, _, err = run("--url", shared_url, "indexes", "vacuum", "--yes")
    assert status == 0 and "nothing to drop" in err
    # --yes drops without asking
    yaml_path.write_text("indexes: []\n")
    status, _, err = run("--url", shared_url, "indexes", "vacuum", "--yes")
    assert status == 0 and "[y/N]" not in err
    assert _status(run, shared_url) == []


def test_missing_index_yaml_is_one_line(run: Run, shared_url: str) -> None:
    for action in ("build", "vacuum"):
        status, _, err = run("--url", shared_url, "indexes", action)
        assert status == 1
        assert "no index.yaml" in _one_error_line(err)
    status, _, err = run("--url", shared_url, "--index-yaml", "nope.yaml", "indexes", "status")
    assert status == 1
    assert _one_error_line(err) == "datastore-lite: error: index.yaml not found: nope.yaml"


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        (
            "indexes:\n- kind: Photo\n  properties:\n  - name: a\n    direction: up\n",
            5,
            "direction",
        ),
        ("indexes:\n- kind: Photo\n  properties: [\n", 4, "not valid YAML"),
        ("indexes:\n- kind: Photo\n  colour: red\n", 3, "colour"),
    ],
)
def test_malformed_index_yaml_names_file_and_line(
    run: Run, shared_url: str, tmp_path: Path, text: str, line: int, problem: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    for action in ("status", "build", "vacuum"):
        status, _, err = run("--url", shared_url, "--index-yaml", str(path), "indexes", action)
        assert status == 1
        message = _one_error_line(err)
        assert f"bad.yaml, line {line}" in message and problem in message


# -- export / import -------------------------------------------------------------------------------


def _all_types(project: str = PROJECT) -> list[Entity]:
    """Every value type with its edge cases, in several partitions."""
    utc = dt.UTC
    photo = Entity(
        Key("User", "alice", "Photo", 1, project=project),
        exclude_from_indexes=("blob", "ghost", "empty_list", "long_text"),
    )
    embedded = Entity(
        Key("Embedded", "e", project=project, namespace="other"),
        exclude_from_indexes=("secret", "absent"),
    )
    embedded.update(secret="s", n=1, deep={"x": [1, 2], "when": dt.datetime(2000, 1, 1)})
    photo.update(
        int_min=INT64_MIN,
        int_max=INT64_MAX,
        zero=0,
        minus_one=-1,
        nan=math.nan,
        inf=math.inf,
        minus_inf=-math.inf,
        minus_zero=-0.0,
        tiny=5e-324,
        huge=1.7976931348623157e308,
        third=1 / 3,
        yes=True,
        no=False,
        empty="",
        text="é日本\U0001f600 \x00\n\"'\\",
        long_text="ü" * 5000,
        blob=b"\x00\xff" * 1000,
        empty_blob=b"",
        none=None,
        first=dt.datetime(1, 1, 1, tzinfo=utc),
        last=dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=utc),
        micro=dt.datetime(2020, 1, 1, 0, 0, 0, 1, tzinfo=utc),
        before_epoch=dt.datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=utc),
        offset=dt.datetime(
            2020, 6, 1, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30))
        ),
        naive=dt.datetime(2021, 2, 3, 4, 5, 6, 7),
        geo=GeoPoint(-90.0, 180.0),
        geo_zero=GeoPoint(-0.0, 0.0),
        key=Key("User", "bob", "Photo", -5, project=project, namespace="other"),
        key_elsewhere=Key("K", "x", "K", INT64_MAX, project="another-proj", database="db2"),
        key_unicode=Key("Ключ", "名前", project=project),
        mixed=[1, "a", None, 2.5, math.nan, b"b", dt.datetime(2001, 1, 1, tzinfo=utc)],
        more=[GeoPoint(1, 2), Key("A", 1, project=project), embedded, {"plain": True}],
        empty_list=[],
        embedded=embedded,
        plain_dict={"a": 1, "b": {"c": None}},
        partial=Entity(Key("Partial", project=project)),
        keyless=Entity(None, exclude_from_indexes=("z",)),
    )
    named = Entity(Key("Kind", "é/ü \x00", project=project, namespace="ns.1-_"))
    named["only"] = "namespace"
    other_db = Entity(Key("Kind", 7, project=project, database="db2"))
    other_db["where"] = "database db2"
    other_project = Entity(Key("Kind", INT64_MIN, project="another-proj", namespace="ns"))
    other_project["list"] = [None]
    excluded_only = Entity(Key("Kind", 1, project=project), exclude_from_indexes=("missing",))
    return [photo, named, other_db, other_project, excluded_only]


def _as_stored(value: Any) -> Any:
    """What the store gives back for ``value``: ``expected_after_store``, and exclusions
    only for names that have a value (not absent, not ``[]``), as the official client
    marks exclusion on each value."""
    value = expected_after_store(value)
    if isinstance(value, Entity):
        kept = [n for n in value.exclude_from_indexes if n in value and value[n] != []]
        copy = Entity(value.key, exclude_from_indexes=tuple(kept))
        copy.update({name: _as_stored(v) for name, v in value.items()})
        return copy
    if isinstance(value, list):
        return [_as_stored(v) for v in value]
    return value


class Store:
    """Reads entities back by key, whatever their project and database."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.clients: dict[tuple[str, str | None], Client] = {}

    def client(self, project: str, database: str | None) -> Client:
        client = self.clients.get((project, database))
        if client is None:
            client = Client(
                project=project,
                database=database,
                url=self.url,
                consistency="strong",
                index_yaml=os.devnull,
            )
            self.clients[(project, database)] = client
        return client

    def put(self, items: list[Entity]) -> None:
        for entity in items:
            assert entity.key is not None
            self.client(entity.key.project, entity.key.database).put(entity)

    def get(self, key: Key) -> Entity | None:
        return self.client(key.project, key.database).get(key)

    def close(self) -> None:
        for client in self.clients.values():
            client.close()


@pytest.fixture
def stores(shared_url: str) -> Iterator[Callable[[str], Store]]:
    opened: list[Store] = []

    def open_store(url: str) -> Store:
        store = Store(url)
        opened.append(store)
        return store

    yield open_store
    for store in opened:
        store.close()


def _fresh_url(shared_url: str, tmp_path: Path, name: str) -> str:
    """Another empty store of the same kind: a new file, or a new PostgreSQL schema."""
    if shared_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path}/{name}.db"
    import uuid

    import psycopg

    base, _, query = shared_url.partition("?")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    plain = base.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    return f"{base}?options=-csearch_path%3D{schema}"


def test_export_import_round_trip_is_exact_for_every_value_type(
    run: Run, stores: Callable[[str], Store], shared_url: str, tmp_path: Path
) -> None:
    source = stores(shared_url)
    originals = _all_types()
    source.put(originals)
    status, _, err = run("--url", shared_url, "export", "-o", "all.jsonl")
    assert status == 0, err
    assert "exported 5 entities to all.jsonl" in err
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]
    fresh = _fresh_url(shared_url, tmp_path, "fresh")
    status, _, err = run("--url", fresh, "import", "all.jsonl")
    assert status == 0, err
    assert "imported 5 entities from all.jsonl" in err
    target = stores(fresh)
    for original in originals:
        assert original.key is not None
        before = source.get(original.key)
        after = target.get(original.key)
        assert before is not None and after is not None
        assert canonical(after) == canonical(before)
        assert after.key == before.key == original.key
        assert after.exclude_from_indexes == before.exclude_from_indexes
        assert canonical(after) == canonical(_as_stored(original))
    # exporting the copy gives the same bytes
    status, out, _ = run("--url", fresh, "export")
    assert out == (tmp_path / "all.jsonl").read_text(encoding="utf-8")


def test_export_form_is_typed_json(
    run: Run, stores: Callable[[str], Store], shared_url: str
) -> None:
    stores(shared_url).put(_all_types())
    status, out, _ = run(
        "--url", shared_url, "--project", PROJECT, "--namespace", "", "export", "--kind", "Photo"
    )
    assert status == 0
    record = json.loads(out.splitlines()[0])
    assert record["key"] == {
        "partitionId": {"projectId": PROJECT},
        "path": [{"kind": "User", "name": "alice"}, {"kind": "Photo", "id": "1"}],
    }
    props = record["properties"]
    assert props["int_min"] == {"integerValue": "-9223372036854775808"}
    assert props["nan"] == {"doubleValue": "NaN"}
    assert props["minus_inf"] == {"doubleValue": "-Infinity"}
    assert props["minus_zero"] == {"doubleValue": -0.0}
    assert props["micro"] == {"timestampValue": "2020-01-01T00:00:00.000001Z"}
    assert props["first"] == {"timestampValue": "0001-01-01T00:00:00.000000Z"}
    assert props["offset"] == {"timestampValue": "2020-06-01T06:30:00.000000Z"}
    assert props["empty_blob"] == {"blobValue": ""}
    assert props["none"] == {"nullValue": None}
    assert props["empty_list"] == {"arrayValue": {"values": []}}
    assert props["key_elsewhere"]["keyValue"]["partitionId"] == {
        "projectId": "another-proj",
        "databaseId": "db2",
    }
    assert props["embedded"]["entityValue"]["excludeFromIndexes"] == ["secret"]
    assert record["excludeFromIndexes"] == ["blob", "long_text"]
    assert "NaN" not in out.replace('"NaN"', "")  # never JSON's non-standard NaN token


def test_export_filters(run: Run, stores: Callable[[str], Store], shared_url: str) -> None:
    stores(shared_url).put(_all_types())

    def keys(*argv: str) -> list[tuple[str, str]]:
        status, out, err = run("--url", shared_url, "export", *argv)
        assert status == 0, err
        out_keys = [loads_entity(line).key for line in out.splitlines()]
        return [(k.project, k.namespace or "") for k in out_keys if k is not None]

    assert len(keys()) == 5
    assert keys("--project", "another-proj") == [("another-proj", "ns")]
    assert sorted(keys("--namespace", "")) == [(PROJECT, ""), (PROJECT, ""), (PROJECT, "")]
    assert keys("--namespace", "ns.1-_") == [(PROJECT, "ns.1-_")]
    assert len(keys("--kind", "Kind")) == 4
    assert len(keys("--kind", "Kind", "--kind", "Photo")) == 5
    assert len(keys("--database", "db2")) == 1
    assert keys("--kind", "Nothing") == []


def test_export_and_import_stream_in_chunks_with_progress(
    run: Run, clients: Callable[..., Client], shared_url: str, tmp_path: Path
) -> None:
    _photos(clients(), 1234)
    status, _, err = run("--url", shared_url, "--progress", "export", "--output", "p.jsonl")
    assert status == 0
    assert re.search(r"\r\[#+\] 100% p\.jsonl 1234/1234\n", err)
    assert err.count("\r") >= 2
    fresh = _fresh_url(shared_url, tmp_path, "copy")
    status, _, err = run("--url", fresh, "--progress", "import", "p.jsonl", "--batch-size", "100")
    assert status == 0, err
    assert re.search(r"\r\[#+\] 100% p\.jsonl 1234/1234\n", err)
    status, out, _ = run("--url", fresh, "stats", "--format", "json")
    assert json.loads(out)[0]["entities"] == 1234
    # stdin: the total is unknown, the bar counts
    status, _, err = run(
        "--url", fresh, "--progress", "import", "-", stdin=(tmp_path / "p.jsonl").read_bytes()
    )
    assert status == 0 and "<stdin> 1234" in err


def test_export_reads_bounded_chunks(
    run: Run, clients: Callable[..., Client], shared_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import datastore_lite.backends.sql as sql

    _photos(clients(), 1100)
    limits: list[int] = []
    original = sql.Txn.entities_after

    def spy(self: Any, pid: int, after: bytes | None, limit: int) -> Any:
        limits.append(limit)
        return original(self, pid, after, limit)

    monkeypatch.setattr(sql.Txn, "entities_after", spy)
    status, out, _ = run("--url", shared_url, "export")
    assert status == 0 and len(out.splitlines()) == 1100
    assert limits == [500, 500, 500]


def test_export_includes_writes_still_pending(
    run: Run, clients: Callable[..., Client], shared_url: str
) -> None:
    from datastore_lite import Eventual

    client = clients(consistency=Eventual(probability=0.0))
    client.put(Entity(client.key("Late", 1)))
    assert client.consistency.pending()
    status, out, _ = run("--url", shared_url, "export")
    assert status == 0 and len(out.splitlines()) == 1


def test_import_errors_name_the_line(
    run: Run, clients: Callable[..., Client], shared_url: str, tmp_path: Path
) -> None:
    good = dumps_entity(_all_types()[1])
    cases = {
        "not json": ("{nope", "bad.jsonl:2: not valid JSON"),
        "bad int": (
            '{"key": {"partitionId": {"projectId": "test-proj"},'
            ' "path": [{"kind": "K", "id": "1"}]},'
            ' "properties": {"n": {"integerValue": "12x"}}}',
            "bad.jsonl:2: properties.n.integerValue: expected an int64",
        ),
        "no key": ('{"properties": {}}', "bad.jsonl:2: expected an entity object with a key"),
        "too long": (
            dumps_entity(_with(Entity(Key("K", 2, project=PROJECT)), s="x" * 1501)),
            "bad.jsonl:2: ",
        ),
    }
    for text, expected in cases.values():
        (tmp_path / "bad.jsonl").write_text(good + "\n" + text + "\n" + good + "\n")
        status, _, err = run("--url", shared_url, "import", "bad.jsonl")
        assert status == 1
        assert _one_error_line(err).startswith(f"datastore-lite: error: {expected}"), err
    # what came before the bad line is stored, nothing after it
    (tmp_path / "bad.jsonl").write_text(
        "\n".join(dumps_entity(_with(Entity(Key("Ok", i, project=PROJECT)), i=i)) for i in (1, 2))
        + "\n"
        + cases["too long"][0]
        + "\n"
        + dumps_entity(Entity(Key("Ok", 3, project=PROJECT)))
        + "\n"
    )
    status, _, err = run("--url", shared_url, "import", "bad.jsonl")
    assert status == 1 and "bad.jsonl:3: " in err
    client = clients()
    assert [e.key.id for e in client.query(kind="Ok").fetch() if e.key] == [1, 2]
    status, _, err = run("--url", shared_url, "import", "missing.jsonl")
    assert status == 1
    assert _one_error_line(err) == (
        "datastore-lite: error: missing.jsonl: No such file or directory"
    )


def _with(entity: Entity, **props: Any) -> Entity:
    entity.update(props)
    return entity


def test_import_replaces_existing_and_completes_partial_keys(
    run: Run, clients: Callable[..., Client], shared_url: str, tmp_path: Path
) -> None:
    client = clients()
    client.put(_with(Entity(client.key("K", 1)), v="old"))
    lines = [
        dumps_entity(_with(Entity(Key("K", 1, project=PROJECT)), v="new")),
        dumps_entity(_with(Entity(Key("K", project=PROJECT)), v="partial")),
        "",
    ]
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    status, _, err = run("--url", shared_url, "import", "in.jsonl")
    assert status == 0, err
    got = {e["v"]: e.key for e in client.query(kind="K").fetch()}
    assert set(got) == {"new", "partial"}
    partial_key = got["partial"]
    assert partial_key is not None and partial_key.id is not None and partial_key.id > 2**52


def test_round_trip_across_backends(
    run: Run, stores: Callable[[str], Store], shared_url: str, tmp_path: Path, pg_url: str
) -> None:
    # SQLite file -> PostgreSQL (and the reverse when the test store is PostgreSQL)
    source_url = shared_url
    target_url = pg_url if shared_url.startswith("sqlite") else f"sqlite:///{tmp_path}/x.db"
    originals = _all_types()
    stores(source_url).put(originals)
    assert run("--url", source_url, "export", "-o", "x.jsonl")[0] == 0
    assert run("--url", target_url, "import", "x.jsonl")[0] == 0
    target = stores(target_url)
    for original in originals:
        assert original.key is not None
        assert canonical(target.get(original.key)) == canonical(_as_stored(original))


_key_strategy = complete_keys(
    project=st.sampled_from([PROJECT, "aaa-proj"]),
    namespace=namespaces,
    database=st.sampled_from([None, "db2"]),
)


@settings(max_examples=20)
@given(
    items=st.lists(
        entities(key_strategy=_key_strategy), max_size=6, unique_by=lambda e: canonical(e.key)
    )
)
def test_round_trip_of_generated_entities(
    items: list[Entity], tmp_path_factory: pytest.TempPathFactory
) -> None:
    # Hypothesis (tests/strategies.py): any values, keys in several partitions; sqlite files
    where = tmp_path_factory.mktemp("hypo")
    source, target = f"sqlite:///{where}/a.db", f"sqlite:///{where}/b.db"
    first, second = Store(source), Store(target)
    try:
        first.put(items)
        dump = where / "dump.jsonl"
        assert main(["--url", source, "-q", "export", "-o", str(dump)]) == 0
        assert main(["--url", target, "-q", "import", str(dump)]) == 0
        for item in items:
            assert item.key is not None
            assert canonical(second.get(item.key)) == canonical(_as_stored(item))
    finally:
        first.close()
        second.close()


@settings(max_examples=200)
@given(entity=entities(key_strategy=_key_strategy))
def test_json_form_round_trip(entity: Entity) -> None:
    line = dumps_entity(entity)
    assert "\n" not in line
    assert canonical(loads_entity(line)) == canonical(_as_json_keeps(entity))


def _as_json_keeps(value: Any) -> Any:
    """What the JSON form gives back: as ``expected_after_store`` (UTC datetimes, dicts as
    keyless entities) but with every exclusion kept, even of absent names and ``[]``."""
    if isinstance(value, dict):
        key = value.key if isinstance(value, Entity) else None
        names = value.exclude_from_indexes if isinstance(value, Entity) else ()
        copy = Entity(key, exclude_from_indexes=tuple(names))
        copy.update({name: _as_json_keeps(v) for name, v in value.items()})
        return copy
    if isinstance(value, list):
        return [_as_json_keeps(v) for v in value]
    return expected_after_store(value)


# -- the JSON form in detail -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "form"),
    [
        (None, {"nullValue": None}),
        (True, {"booleanValue": True}),
        (INT64_MAX, {"integerValue": "9223372036854775807"}),
        (-0.0, {"doubleValue": -0.0}),
        (math.inf, {"doubleValue": "Infinity"}),
        ("é", {"stringValue": "é"}),
        (b"\x00\xfb\xff", {"blobValue": "APv/"}),
        (dt.datetime(2020, 1, 1, 0, 0, 0, 1), {"timestampValue": "2020-01-01T00:00:00.000001Z"}),
        (GeoPoint(1.5, -2), {"geoPointValue": {"latitude": 1.5, "longitude": -2.0}}),
        ([], {"arrayValue": {"values": []}}),
        (
            Key("A", 1, "B", "x", project="p", namespace="n", database="d"),
            {
                "keyValue": {
                    "partitionId": {"projectId": "p", "databaseId": "d", "namespaceId": "n"},
                    "path": [{"kind": "A", "id": "1"}, {"kind": "B", "name": "x"}],
                }
            },
        ),
        ({"a": None}, {"entityValue": {"properties": {"a": {"nullValue": None}}}}),
    ],
)
def test_value_json_forms(value: Any, form: dict[str, Any]) -> None:
    assert value_to_json(value) == form
    assert canonical(value_from_json(form)) == canonical(expected_after_store(value))


@pytest.mark.parametrize(
    ("form", "value"),
    [
        ({"nullValue": "NULL_VALUE"}, None),
        ({"integerValue": 5}, 5),
        ({"doubleValue": 2}, 2.0),
        ({"doubleValue": "-Infinity"}, -math.inf),
        (
            {"timestampValue": "2020-01-01T01:00:00.123456789+01:00"},
            dt.datetime(2020, 1, 1, 0, 0, 0, 123456, tzinfo=dt.UTC),
        ),
        ({"timestampValue": "2020-01-01T00:00:00Z"}, dt.datetime(2020, 1, 1, tzinfo=dt.UTC)),
        ({"blobValue": "-_8="}, b"\xfb\xff"),
        ({"arrayValue": {}}, []),
        ({"stringValue": "x", "excludeFromIndexes": True, "meaning": 15}, "x"),
    ],
)
def test_value_json_accepts_rest_variants(form: dict[str, Any], value: Any) -> None:
    assert canonical(value_from_json(form)) == canonical(value)


def test_rest_per_value_exclusion_is_read() -> None:
    entity = entity_from_json(
        {
            "key": {"partitionId": {"projectId": "p"}, "path": [{"kind": "K", "id": "1"}]},
            "properties": {
                "a": {"stringValue": "x", "excludeFromIndexes": True},
                "b": {
                    "arrayValue": {"values": [{"integerValue": "1", "excludeFromIndexes": True}]}
                },
                "c": {"integerValue": "1"},
            },
        }
    )
    assert entity.exclude_from_indexes == {"a", "b"}


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({}, "expected exactly one of"),
        ({"integerValue": "1", "stringValue": "x"}, "expected exactly one of"),
        ({"integerValue": "9223372036854775808"}, "outside the int64 range"),
        ({"integerValue": True}, "expected an int64"),
        ({"doubleValue": "nan"}, '"NaN"'),
        ({"booleanValue": 1}, "expected true or false"),
        ({"timestampValue": "2020-13-01T00:00:00Z"}, "invalid timestamp"),
        ({"timestampValue": "yesterday"}, "RFC 3339"),
        ({"blobValue": "***"}, "invalid base64"),
        ({"stringValue": 3}, "expected a string"),
        ({"arrayValue": {"values": [{"arrayValue": {}}]}}, "cannot contain an array"),
        ({"keyValue": {"path": [{"kind": "K", "id": "1"}]}}, "projectId is required"),
        ({"keyValue": {"partitionId": {"projectId": "p"}, "path": []}}, "non-empty array"),
        (
            {
                "keyValue": {
                    "partitionId": {"projectId": "p"},
                    "path": [{"kind": "K"}, {"kind": "L", "id": "1"}],
                }
            },
            "only the last path element",
        ),
        ({"colour": "red", "nullValue": None}, "unknown field 'colour'"),
        ([], "expected a JSON object"),
    ],
)
def test_value_json_errors_say_where_and_why(form: Any, message: str) -> None:
    with pytest.raises(JsonFormError, match=re.escape(message)) as info:
        value_from_json(form, "properties.p")
    assert str(info.value).startswith("properties.p")


def test_entity_json_keeps_exclusions_of_absent_and_empty_properties() -> None:
    entity = Entity(Key("K", 1, project="p"), exclude_from_indexes=("gone", "empty"))
    entity["empty"] = []
    form = entity_to_json(entity)
    assert form["excludeFromIndexes"] == ["empty", "gone"]
    assert entity_from_json(form) == entity


# -- stats -----------------------------------------------------------------------------------------


def test_stats_counts_entities_bytes_and_index_entries(
    run: Run, clients: Callable[..., Client], shared_url: str, tmp_path: Path
) -> None:
    client = clients()
    _photos(client, 10)
    shop = clients(namespace="shop")
    shop.put_multi([_with(Entity(shop.key("Order", i)), total=i, note=None) for i in range(1, 4)])
    (tmp_path / "index.yaml").write_text(INDEX_YAML)
    assert run("--url", shared_url, "-q", "indexes", "build")[0] == 0

    status, out, err = run("--url", shared_url, "stats", "--format", "json")
    assert status == 0, err
    rows = {(r["namespace"], r["kind"]): r for r in json.loads(out)}
    assert set(rows) == {("", "Photo"), ("shop", "Order")}
    photo = rows[("", "Photo")]
    assert photo["entities"] == 10 and photo["bytes"] > 10 * 40
    # the counted entries equal the rows the store holds for the kind's indexes
    api = client._datastore_api
    api.registry.reload()
    ids = [iid for (kind, _), iid in api.registry.builtin.items() if kind == "Photo"]
    ids += [e.id for e in api.registry.composites["Photo"]]
    with api.backend.read() as r:
        held = sum(r.count_index_entries(iid) for iid in ids)
    # per photo: caption, likes, date, 1-2 tags (image unindexed); composites: tags x date and
    # one entry per ancestor
    assert photo["index_entries"] == held == 10 * 3 + 15 + 15 + 20
    assert rows[("shop", "Order")]["index_entries"] == 6

    status, out, _ = run("--url", shared_url, "stats")
    lines = out.splitlines()
    assert lines[0].split() == ["namespace", "kind", "entities", "size", "index", "entries"]
    assert re.match(r"\(default\)\s+Photo\s+10\s+\d+(\.\d)? (B|KiB)\s+80$", lines[2])
    assert re.match(r"shop\s+Order\s+3\s+", lines[3])
    assert re.match(r"total\s+13\s+", lines[-1])
    status, out, _ = run("--url", shared_url, "--namespace", "shop", "stats", "--format", "json")
    assert [r["kind"] for r in json.loads(out)] == ["Order"]
    status, out, _ = run("--url", shared_url, "stats", "--kind", "Photo", "--format", "json")
    assert [r["kind"] for r in json.loads(out)] == ["Photo"]
    status, out, err = run("--url", shared_url, "--progress", "stats")
    assert "\r[" in err and " 13/13" in err


def test_stats_shows_projects_when_there_are_several(
    run: Run, stores: Callable[[str], Store], shared_url: str
) -> None:
    status, out, _ = run("--url", shared_url, "stats")
    assert status == 0 and out == "no entities\n"
    stores(shared_url).put(_all_types())
    status, out, _ = run("--url", shared_url, "stats")
    header = out.splitlines()[0].split()
    assert header[:4] == ["project", "database", "namespace", "kind"]
    assert "another-proj" in out and "db2" in out


# -- demo ------------------------------------------------------------------------------------------


def test_demo_runs_the_stale_reads_module(run: Run, shared_url: str) -> None:
    status, out, err = run(
        "--url", shared_url, "demo", "stale-reads", "--seed", "4", "--part", "1", "--photos", "2"
    )
    assert status == 0, err
    assert "seed 4" in out
    assert shared_url.split("?")[0] in out  # the global --url reached the demo


def test_demo_falls_back_to_a_stub_without_the_module(
    run: Run, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(cli_module, "_demo_module", lambda: None)
    status, out, _ = run("demo", "stale-reads", "--url", f"sqlite:///{tmp_path}/d.db")
    assert status == 0 and "first photo" in out


# -- errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mysql://user:secret@host/db", "unsupported database URL 'mysql://user:***@host/db'"),
        ("sqlite:////nonexistent/dir/x.db", "cannot open the datastore_lite database"),
        ("sqlite:/x", "invalid database URL 'sqlite:/x'"),
        ("postgresql://u:secret@127.0.0.1:notaport/db", "cannot open the database at"),
        ("postgresql://postgres:secret@127.0.0.1:1/test", "PostgreSQL unavailable"),
    ],
)
def test_bad_url_is_one_line(run: Run, url: str, expected: str) -> None:
    for argv in (["stats"], ["export"], ["indexes", "status"]):
        status, _, err = run("--url", url, *argv)
        assert status == 1
        line = _one_error_line(err)
        assert expected in line
        assert "secret" not in line


def test_debug_shows_the_traceback(run: Run) -> None:
    status, _, err = run("--debug", "--url", "mysql://h/db", "stats")
    assert status == 1
    assert "Traceback" in err and err.splitlines()[-1].startswith("datastore-lite: error:")


def test_unexpected_errors_and_interrupts_have_no_traceback(
    run: Run, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import datastore_lite._cli_commands as commands

    def boom(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("something broke\nsecond line")

    monkeypatch.setattr(commands, "_open_client", boom)
    status, _, err = run("stats")
    assert status == 1
    assert _one_error_line(err) == (
        "datastore-lite: error: unexpected RuntimeError: something broke (--debug shows where)"
    )

    def interrupted(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(commands, "_open_client", interrupted)
    status, _, err = run("stats")
    assert status == 130 and err == "datastore-lite: interrupted\n"


# -- subprocess runs of the installed command ------------------------------------------------------


def _exe(
    *argv: str, stdin: bytes | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if k not in _ENV}
    return subprocess.run(
        [str(EXE), *argv], input=stdin, capture_output=True, cwd=cwd, env=env, timeout=120
    )


def test_installed_command_help_and_usage_error(tmp_path: Path) -> None:
    done = _exe("--help", cwd=tmp_path)
    assert done.returncode == 0 and b"examples:" in done.stdout
    done = _exe("nonsense", cwd=tmp_path)
    assert done.returncode == 2 and b"Traceback" not in done.stderr


def test_installed_command_pipes_export_into_import(
    stores: Callable[[str], Store], shared_url: str, tmp_path: Path
) -> None:
    originals = _all_types()
    stores(shared_url).put(originals)
    exported = _exe("--url", shared_url, "export", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    assert exported.stderr.decode() == "exported 5 entities to stdout\n"
    target_url = f"sqlite:///{tmp_path}/piped.db"
    imported = _exe("--url", target_url, "import", "-", stdin=exported.stdout, cwd=tmp_path)
    assert imported.returncode == 0, imported.stderr
    target = stores(target_url)
    for original in originals:
        assert original.key is not None
        assert canonical(target.get(original.key)) == canonical(_as_stored(original))


def test_installed_command_errors_are_one_line(shared_url: str, tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("indexes:\n- kind: A\n  properties:\n  - nam: x\n")
    for argv in (
        ["--url", "mysql://h/db", "stats"],
        ["--url", shared_url, "--index-yaml", "bad.yaml", "indexes", "build"],
        ["--url", shared_url, "indexes", "vacuum"],
        ["--url", shared_url, "import", "nothing.jsonl"],
    ):
        done = _exe(*argv, cwd=tmp_path)
        assert done.returncode == 1
        _one_error_line(done.stderr.decode())
    done = _exe("--url", shared_url, "--index-yaml", "bad.yaml", "indexes", "build", cwd=tmp_path)
    assert b"bad.yaml, line 4" in done.stderr


def test_installed_command_gql(
    clients: Callable[..., Client], shared_url: str, tmp_path: Path
) -> None:
    _photos(clients(), 2)
    done = _exe(
        "--url", shared_url, "--project", PROJECT, "gql", "SELECT * FROM Photo", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().splitlines()[-1] == "(2 entities)"
    done = _exe("--url", shared_url, "gql", "SELEKT", cwd=tmp_path)
    assert done.returncode == 1
    _one_error_line(done.stderr.decode())


def test_installed_command_survives_a_closed_pipe(
    clients: Callable[..., Client], shared_url: str, tmp_path: Path
) -> None:
    _photos(clients(), 3000)
    env = {k: v for k, v in os.environ.items() if k not in _ENV}
    done = subprocess.run(
        f"{shlex.quote(str(EXE))} --url {shlex.quote(shared_url)} export | head -1",
        shell=True,
        capture_output=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    assert len(done.stdout.splitlines()) == 1
    assert b"Traceback" not in done.stderr and b"Exception" not in done.stderr


# -- progress bar and formatting -------------------------------------------------------------------


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_silent_unless_a_tty_or_forced() -> None:
    plain = io.StringIO()
    bar = Progress(10, "x", stream=plain)
    bar.update(10)
    bar.close()
    assert plain.getvalue() == ""
    tty = _Tty()
    bar = Progress(10, "x", stream=tty)
    bar.update(10)
    bar.close()
    assert tty.getvalue() == "\r[##############################] 100% x 10/10\n"
    forced_off = _Tty()
    with Progress(10, "x", stream=forced_off, force=False) as bar:
        bar.update(5)
    assert forced_off.getvalue() == ""


def test_progress_redraws_in_place_and_throttles() -> None:
    now = [0.0]
    out = io.StringIO()
    bar = Progress(
        200, "Photo(tags, date desc)", stream=out, force=True, width=10, clock=lambda: now[0]
    )
    bar.update(90)
    bar.update(1)  # within the interval: not drawn
    now[0] = 1.0
    bar.update(9)
    bar.close()
    bar.close()  # idempotent
    assert out.getvalue() == (
        "\r[####......]  45% Photo(tags, date desc) 90/200"
        "\r[#####.....]  50% Photo(tags, date desc) 100/200\n"
    )


def test_progress_with_unknown_total_counts() -> None:
    out = io.StringIO()
    bar = Progress(None, "<stdin>", stream=out, force=True, width=3)
    bar.update(7)
    bar.set(12, total=12)
    bar.close()
    assert out.getvalue() == "\r[???] <stdin> 7\r[###] 100% <stdin> 12/12\n"


def test_progress_pads_over_a_longer_previous_line() -> None:
    out = io.StringIO()
    bar = Progress(100, "x", stream=out, force=True, width=1, interval=0)
    bar.set(100)
    bar.set(5)
    assert out.getvalue() == "\r[#] 100% x 100/100\r[.]   5% x 5/100  "


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "null"),
        (True, "true"),
        (-3, "-3"),
        (math.nan, "NaN"),
        (-0.0, "-0.0"),
        ("tab\there", "tab\\there"),
        (b"\x00a", "b'\\x00a'"),
        (dt.datetime(2020, 1, 1, 0, 0, 0, 5, tzinfo=dt.UTC), "2020-01-01T00:00:00.000005Z"),
        (dt.datetime(2020, 1, 1), "2020-01-01T00:00:00Z"),
        (GeoPoint(1.5, -2.0), "GeoPoint(1.5, -2.0)"),
        (Key("User", "a", "Photo", 5, project="p"), "Key(User, 'a', Photo, 5)"),
        (Key("A b", 1, project="q", namespace="n"), "Key('A b', 1, project='q', namespace='n')"),
        (["a", 1, None], "['a', 1, null]"),
        ({"x": "y"}, "{x: 'y'}"),
    ],
)
def test_format_value(value: Any, text: str) -> None:
    assert format_value(value, 80, ("p", None)) == text


def test_format_truncates_by_display_width() -> None:
    assert format_value("x" * 50, 10) == "x" * 9 + "…"
    cut = format_value("日本語のテキスト", 7)
    assert cut == "日本語…" and display_width(cut) == 7
    assert format_size(512) == "512 B" and format_size(1536) == "1.5 KiB"
    assert (
        format_index("Photo", True, [("a", "asc"), ("b", "desc")]) == "Photo(ancestor, a, b desc)"
    )


# -- docs -----------------------------------------------------------------------------------------


def test_docs_cli_examples_parse() -> None:
    # every `datastore-lite ...` line in docs/cli.md's sh blocks is a valid command line
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```sh\n(.*?)```", text, re.DOTALL)
    assert blocks
    checked = 0
    for block in blocks:
        for argv in _command_lines(block):
            if "--help" not in argv:
                build_parser(argv).parse_args(argv)
                checked += 1
    assert checked >= 15


# -- bugs found in other modules -------------------------------------------------------------------


def test_bug_malformed_url_raises_a_package_error() -> None:
    with pytest.raises((ValueError, exceptions.DatastoreLiteError)):
        Client(url="sqlite:/x")


def test_bug_unsupported_url_error_hides_the_password() -> None:
    with pytest.raises(ValueError) as info:
        Client(url="mysql://user:secret@host/db")
    assert "secret" not in str(info.value)


def test_bug_running_client_sees_an_index_built_elsewhere(
    run: Run, clients: Callable[..., Client], shared_url: str, tmp_path: Path
) -> None:
    client = clients()
    _photos(client, 4)
    query = client.query(kind="Photo", order=["-date"])
    query.add_filter(filter=_eq("tags", "beach"))
    with pytest.raises(exceptions.FailedPrecondition):
        list(query.fetch())
    (tmp_path / "index.yaml").write_text(INDEX_YAML)
    assert run("--url", shared_url, "-q", "indexes", "build")[0] == 0
    assert len(list(query.fetch())) == 2


def test_gql_keys_only_with_a_key_equality_filter(
    run: Run, clients: Callable[..., Client], shared_url: str
) -> None:
    # once a bug: InvalidArgument "cannot use projection on a property with an equality
    # filter"; the emulator returns the key (probed: keys_only() + key_filter(key, '='))
    client = clients()
    _photos(client, 2)
    query = "SELECT __key__ FROM Photo WHERE __key__ = KEY(User, 'alice', Photo, 2)"
    status, out, err = run("--url", shared_url, "--project", PROJECT, "gql", query)
    assert status == 0, err
    assert out.splitlines()[-1] == "(1 entity)"
