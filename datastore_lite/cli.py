"""The ``datastore-lite`` command: look at and manage a datastore_lite store.

``gql`` runs a GQL query and prints a table; ``indexes status|build|vacuum`` shows and
manages composite indexes; ``export`` / ``import`` copy entities as JSON Lines (exact for
every value type); ``stats`` counts entities, bytes and index entries; ``demo`` runs the
demonstrations. docs/cli.md has every command with examples.

Errors are one line on stderr (``datastore-lite: error: ...``) and exit status 1; command
line mistakes exit 2 (argparse); ``--debug`` adds the traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from types import ModuleType
from typing import IO, TYPE_CHECKING, Any, TextIO

from ._cli_format import (
    aggregation_json,
    format_index,
    format_size,
    format_value,
    render_table,
)

if TYPE_CHECKING:
    from ._api import LocalDatastoreAPI
    from .client import Client
    from .entity import Entity

__all__ = ["main"]

PROG = "datastore-lite"
_DEMO_MODULE = "datastore_lite.demo.stale_reads"
_IMPORT_BATCH = 500  # SEMANTICS.md §7: at most 500 mutations per commit
_TABLE_LIMIT = 1000


class CommandError(Exception):
    """A failure the command reports as one line (exit status 1)."""


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keep the descriptions' paragraphs and the examples' layout as written."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=30)


# -- global options ----------------------------------------------------------------------------

# dest -> (flags, keyword arguments); accepted before and after the command name
_GLOBAL_OPTIONS: list[tuple[tuple[str, ...], dict[str, Any]]] = [
    (
        ("--url",),
        {
            "metavar": "URL",
            "help": "database: sqlite:///file.db, sqlite:// (memory) or "
            "postgresql://user@host/db (default: $DATASTORE_LITE_URL, else "
            "sqlite:///datastore_lite.db)",
        },
    ),
    (
        ("--project",),
        {
            "metavar": "ID",
            "help": "project (default: $DATASTORE_DATASET, $DATASTORE_PROJECT_ID, "
            "$GOOGLE_CLOUD_PROJECT, else 'default'); export and stats cover every "
            "project unless it is given",
        },
    ),
    (
        ("--namespace",),
        {
            "metavar": "NS",
            "help": "namespace ('' = the default one); gql uses the default namespace and "
            "export/stats every namespace unless it is given",
        },
    ),
    (
        ("--database",),
        {"metavar": "DB", "help": "database inside the store (default: the default one)"},
    ),
    (
        ("--index-yaml",),
        {
            "metavar": "FILE",
            "help": "index definitions (default: $DATASTORE_LITE_INDEX_YAML, else "
            "./index.yaml when present)",
        },
    ),
    (
        ("--profile",),
        {
            "choices": ["legacy", "firestore"],
            "help": "rules (default: $DATASTORE_LITE_PROFILE, else legacy)",
        },
    ),
    (
        ("--consistency",),
        {
            "metavar": "POLICY",
            "help": "global-query consistency of this command: strong (the default: see "
            "every committed write), hrd, lag=SECONDS or probability=P",
        },
    ),
    (
        ("--progress",),
        {
            "action": "store_const",
            "const": True,
            "help": "draw progress bars on stderr even when it is not a terminal",
        },
    ),
    (
        ("--no-progress",),
        {"action": "store_const", "const": False, "dest": "progress", "help": "no progress bars"},
    ),
    (
        ("-q", "--quiet"),
        {"action": "store_true", "help": "no progress bars and no summary lines on stderr"},
    ),
    (("--debug",), {"action": "store_true", "help": "show the traceback of an error"}),
]


def _add_global_options(parser: argparse.ArgumentParser, top: bool) -> None:
    group = parser.add_argument_group("global options")
    for flags, kwargs in _GLOBAL_OPTIONS:
        options = dict(kwargs)
        if not top:
            # not given after the command: keep what was given before it
            options["default"] = argparse.SUPPRESS
        elif options.get("action") == "store_true":
            options["default"] = False
        else:
            options.setdefault("default", None)
        group.add_argument(*flags, **options)


# -- the parser --------------------------------------------------------------------------------

_MAIN_HELP = """\
Look at and manage a datastore_lite store (SQLite or PostgreSQL): run GQL queries, manage
composite indexes, export and import entities, count what is stored, run the demos. The
database comes from --url, else $DATASTORE_LITE_URL, else sqlite:///datastore_lite.db;
`datastore-lite COMMAND --help` explains each command.

examples:
  datastore-lite --url sqlite:///photos.db gql "SELECT * FROM Photo LIMIT 5"
  datastore-lite indexes status
  datastore-lite export --output backup.jsonl
  DATASTORE_LITE_URL=postgresql://postgres@127.0.0.1/test datastore-lite stats
"""

_COMMANDS: dict[str, tuple[str, str]] = {
    "gql": (
        "run a GQL query and print the results",
        """\
Run one GQL query (SELECT ..., or AGGREGATE ... OVER (SELECT ...)) in --project and
--namespace, and print the results: a table with the key and then one column per
property (long values truncated to --max-width), or the typed JSON of `export` with
--format json/jsonl (which `import` reads back). The table stops after --limit results
(1000 by default); JSON formats stream every result unless --limit is given. The query
reads with strong consistency unless --consistency says otherwise.

examples:
  datastore-lite gql "SELECT * FROM Photo WHERE tags = 'beach' ORDER BY date DESC LIMIT 10"
  datastore-lite gql "SELECT __key__ FROM User" --format jsonl > users.jsonl
  datastore-lite --namespace shop gql "AGGREGATE COUNT(*) OVER (SELECT * FROM Order)"
""",
    ),
    "indexes": (
        "show, build and remove composite indexes",
        """\
Manage the composite indexes of index.yaml: `status` lists them with their state and
number of entries, `build` registers the definitions of index.yaml and builds every index
still in state building over the existing data (with a progress bar), `vacuum` drops the
indexes that are no longer in index.yaml.

examples:
  datastore-lite indexes status
  datastore-lite --index-yaml app/index.yaml indexes build
  datastore-lite indexes vacuum --yes
""",
    ),
    "export": (
        "write entities as JSON Lines",
        """\
Write every entity (or those of --kind, --namespace, --project) as JSON Lines: one entity
per line in a typed JSON form close to Datastore's REST API, exact for every value type
(int64, NaN and -0.0, µs timestamps, bytes, keys with their project, database and
namespace, embedded entities, unindexed properties). Reads in chunks, so any size fits;
writes pending in the consistency simulation are applied first. A file is written under a
temporary name and renamed when complete. `import` reads it back.

examples:
  datastore-lite export --output backup.jsonl
  datastore-lite export --kind Photo --namespace '' | gzip > photos.jsonl.gz
  datastore-lite --url postgresql://postgres@127.0.0.1/test export -o pg.jsonl
""",
    ),
    "import": (
        "read entities from JSON Lines (the export format)",
        """\
Store the entities of a JSON Lines file written by `export` (or `gql --format jsonl`),
in commits of up to 500 entities (--batch-size), keeping every key exactly: project,
database and namespace included. An entity with an existing key replaces it; a partial
key gets a new id. On an error the message names the line; every entity before it is
stored, none after. FILE may be - for stdin.

examples:
  datastore-lite --url sqlite:///copy.db import backup.jsonl
  gunzip -c photos.jsonl.gz | datastore-lite import -
""",
    ),
    "stats": (
        "count entities, bytes and index entries per namespace and kind",
        """\
Scan the store and print, per namespace and kind, the number of entities, the bytes they
take (keys and bodies) and the number of index entries they have (built-in and composite,
counted with the index rules from the stored entities). Limited to --project, --namespace
or --kind when given.

examples:
  datastore-lite stats
  datastore-lite --namespace shop stats --format json
""",
    ),
    "demo": (
        "run a demonstration",
        """\
Run a demonstration of Datastore behaviour on datastore_lite. `stale-reads` replays the
photo-timeline lesson: global queries miss a photo just posted (eventual consistency),
ancestor queries never do; then the per-entity-group write limit. The same --seed
replays the same run.

examples:
  datastore-lite demo stale-reads
  datastore-lite demo stale-reads --seed 7
""",
    ),
}


def _command_parser(sub: Any, name: str) -> argparse.ArgumentParser:
    summary, description = _COMMANDS[name]
    parser: argparse.ArgumentParser = sub.add_parser(
        name, help=summary, description=description, formatter_class=_Formatter
    )
    return parser


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The argument parser (the demo's own options are loaded only when ``demo`` is used)."""
    from .version import __version__

    parser = argparse.ArgumentParser(prog=PROG, description=_MAIN_HELP, formatter_class=_Formatter)
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    _add_global_options(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    gql = _command_parser(sub, "gql")
    gql.add_argument("query", metavar="QUERY", help="the GQL query text")
    gql.add_argument("--format", choices=["table", "json", "jsonl"], default="table")
    gql.add_argument("--limit", type=_positive_int, metavar="N", help="print at most N results")
    gql.add_argument(
        "--max-width",
        type=_positive_int,
        default=40,
        metavar="N",
        help="truncate table cells to N characters (default 40)",
    )
    _add_global_options(gql, top=False)
    gql.set_defaults(handler=cmd_gql)

    indexes = _command_parser(sub, "indexes")
    isub = indexes.add_subparsers(dest="action", metavar="ACTION", required=True)
    status = isub.add_parser(
        "status",
        help="list composite indexes: state and entries",
        formatter_class=_Formatter,
        description="""\
List the composite indexes: kind, ancestor, properties with their directions, state
(building or serving) and number of entries, with a note for the definitions of
index.yaml not registered yet and the indexes no longer in it.

examples:
  datastore-lite indexes status
  datastore-lite indexes status --format json
""",
    )
    status.add_argument("--format", choices=["table", "json"], default="table")
    _add_global_options(status, top=False)
    status.set_defaults(handler=cmd_indexes_status)
    build = isub.add_parser(
        "build",
        help="register index.yaml's indexes and build them",
        formatter_class=_Formatter,
        description="""\
Register the definitions of index.yaml and build every index in state building over
the existing entities, one chunk per transaction, with a progress bar per index on
stderr; a built index switches to serving. Writers keep working meanwhile.

examples:
  datastore-lite indexes build
  datastore-lite --index-yaml app/index.yaml --url postgresql://postgres@127.0.0.1/test \\
      indexes build
""",
    )
    _add_global_options(build, top=False)
    build.set_defaults(handler=cmd_indexes_build)
    vacuum = isub.add_parser(
        "vacuum",
        help="drop the indexes that are not in index.yaml",
        formatter_class=_Formatter,
        description="""\
Drop every composite index (with its entries) whose definition is no longer in
index.yaml, after listing them and asking for confirmation (--yes skips the question,
--dry-run only lists them).

examples:
  datastore-lite indexes vacuum
  datastore-lite indexes vacuum --yes
""",
    )
    vacuum.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    vacuum.add_argument("--dry-run", action="store_true", help="only list what would be dropped")
    _add_global_options(vacuum, top=False)
    vacuum.set_defaults(handler=cmd_indexes_vacuum)

    export = _command_parser(sub, "export")
    export.add_argument(
        "--kind", action="append", metavar="KIND", help="only this kind (repeatable)"
    )
    export.add_argument(
        "-o", "--output", default="-", metavar="FILE", help="output file, - = stdout (default)"
    )
    _add_global_options(export, top=False)
    export.set_defaults(handler=cmd_export)

    imp = _command_parser(sub, "import")
    imp.add_argument("file", metavar="FILE", help="JSON Lines file, - = stdin")
    imp.add_argument(
        "--batch-size",
        type=_batch_size,
        default=_IMPORT_BATCH,
        metavar="N",
        help="entities per commit, 1..500 (default 500)",
    )
    _add_global_options(imp, top=False)
    imp.set_defaults(handler=cmd_import)

    stats = _command_parser(sub, "stats")
    stats.add_argument(
        "--kind", action="append", metavar="KIND", help="only this kind (repeatable)"
    )
    stats.add_argument("--format", choices=["table", "json"], default="table")
    _add_global_options(stats, top=False)
    stats.set_defaults(handler=cmd_stats)

    demo = _command_parser(sub, "demo")
    dsub = demo.add_subparsers(dest="demo", metavar="DEMO", required=True)
    stale = dsub.add_parser(
        "stale-reads",
        help="stale reads of global queries, and the per-group write limit",
        formatter_class=_Formatter,
        description=_COMMANDS["demo"][1],
    )
    wants_demo = argv is None or "demo" in argv
    module = _demo_module() if wants_demo else None
    if module is not None:
        _add_demo_arguments(stale, module)
    else:
        stale.add_argument("--seed", type=int, default=None, help="seed of the simulation")
        stale.add_argument("--url", default=None, help="database URL")
        stale.set_defaults(handler=_stub_demo)
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _batch_size(text: str) -> int:
    value = _positive_int(text)
    if value > _IMPORT_BATCH:
        raise argparse.ArgumentTypeError(f"at most {_IMPORT_BATCH} (one commit), not {value}")
    return value


# -- the demo ----------------------------------------------------------------------------------


def _demo_module() -> ModuleType | None:
    """The lead's demo module, or None while it does not exist yet."""
    import importlib

    try:
        return importlib.import_module(_DEMO_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name is not None and _DEMO_MODULE.startswith(exc.name):
            return None
        raise


_DEMO_DEFAULTS = "_demo_defaults"


def _add_demo_arguments(parser: argparse.ArgumentParser, module: ModuleType) -> None:
    module.add_arguments(parser)
    # An option of the demo that is also a global one (--url, --consistency): given
    # after `stale-reads` it wins, given before it is used, else the demo's default.
    originals = {}
    global_dests = {_dest(flags, kwargs) for flags, kwargs in _GLOBAL_OPTIONS}
    for action in parser._actions:
        if action.dest in global_dests:
            originals[action.dest] = action.default
            action.default = argparse.SUPPRESS
    parser.set_defaults(handler=_run_demo, **{_DEMO_DEFAULTS: originals})


def _dest(flags: tuple[str, ...], kwargs: dict[str, Any]) -> str:
    return str(kwargs.get("dest") or flags[-1].lstrip("-").replace("-", "_"))


def _run_demo(args: argparse.Namespace) -> int:
    for dest, default in getattr(args, _DEMO_DEFAULTS, {}).items():
        if getattr(args, dest, None) is None:
            setattr(args, dest, default)
    module = _demo_module()
    assert module is not None
    return int(module.run(args))


def _stub_demo(args: argparse.Namespace) -> int:
    """A minimal stand-in while the demo module is being written."""
    from .client import Client
    from .entity import Entity

    client = Client(
        project="demo", url=args.url or "sqlite:///datastore_lite_demo.db", consistency="strong"
    )
    try:
        photo = Entity(client.key("User", "alice", "Photo"))
        photo["caption"] = "first photo"
        client.put(photo)
        assert photo.key is not None
        print("stored", photo.key, "->", client.get(photo.key))
    finally:
        client.close()
    return 0


# -- shared helpers ----------------------------------------------------------------------------


def _progress_force(args: argparse.Namespace) -> bool | None:
    if args.quiet:
        return False
    value: bool | None = args.progress
    return value


def _note(args: argparse.Namespace, message: str) -> None:
    """A summary line on stderr (not with --quiet)."""
    if not args.quiet:
        print(message, file=sys.stderr)


def _index_yaml_path(args: argparse.Namespace, required: bool) -> str | None:
    """--index-yaml, else $DATASTORE_LITE_INDEX_YAML, else ./index.yaml if present."""
    path = args.index_yaml or os.environ.get("DATASTORE_LITE_INDEX_YAML")
    if path is None and os.path.exists("index.yaml"):
        path = "index.yaml"
    if path is None:
        if required:
            raise CommandError(
                "no index.yaml: pass --index-yaml FILE or set DATASTORE_LITE_INDEX_YAML "
                "(./index.yaml is used when present)"
            )
        return None
    if not os.path.isfile(path) and (required or args.index_yaml):
        raise CommandError(f"index.yaml not found: {path}")
    return str(path)


def _open_client(
    args: argparse.Namespace,
    *,
    project: str | None = None,
    database: str | None = None,
    namespace: str | None = None,
) -> Client:
    """A client on the store; index.yaml is never synced implicitly (commands do it)."""
    from .client import Client

    return Client(
        project=project if project is not None else args.project,
        namespace=namespace,
        database=database if database is not None else args.database,
        url=args.url,
        index_yaml=os.devnull,
        profile=args.profile,
        consistency=args.consistency or "strong",
    )


@contextlib.contextmanager
def _closing(client: Client) -> Iterator[Client]:
    try:
        yield client
    finally:
        client.close()


def _label(index: Any) -> str:
    return format_index(
        index.kind, index.ancestor, [(p.name, p.direction) for p in index.properties]
    )


def _build_with_progress(
    args: argparse.Namespace, api: LocalDatastoreAPI, entries: list[Any]
) -> None:
    from ._index_sync import build_index

    for entry in sorted(entries, key=lambda e: _label(e.index)):
        label = _label(entry.index)
        started = time.monotonic()
        bar = _new_progress(args, None, label)

        def report(done: int, total: int, bar: Any = bar) -> None:
            bar.set(done, total)

        with bar:
            scanned = build_index(api, entry, report)
        _note(
            args,
            f"built {label}: {scanned} entities in {time.monotonic() - started:.1f}s, now serving",
        )


def _new_progress(args: argparse.Namespace, total: int | None, label: str) -> Any:
    from ._progress import Progress

    return Progress(total, label, stream=sys.stderr, force=_progress_force(args))


def _stdout_writer() -> Callable[[str], object]:
    out = sys.stdout
    return out.write


# -- gql ---------------------------------------------------------------------------------------


def cmd_gql(args: argparse.Namespace) -> int:
    """``datastore-lite gql QUERY``."""
    import itertools

    from ._export import entity_to_json
    from .aggregation import AggregationQuery

    yaml_path = _index_yaml_path(args, required=False)
    with _closing(_open_client(args, namespace=args.namespace)) as client:
        if yaml_path is not None:
            # as Client(index_yaml=...) does, with progress bars for new indexes
            from ._index_sync import register_indexes
            from .indexes import load_index_yaml

            api = client._datastore_api
            api.index_yaml = yaml_path
            client.index_yaml = yaml_path
            _build_with_progress(args, api, register_indexes(api, load_index_yaml(yaml_path)))
        gql = getattr(client, "gql", None)
        if gql is None:
            raise CommandError("this datastore_lite has no GQL support (Client.gql) yet")
        query = gql(args.query)
        write = _stdout_writer()
        if isinstance(query, AggregationQuery):
            results = [r for batch in query.fetch() for r in batch]
            if args.format == "table":
                header = [r.alias for r in results]
                row = [format_value(r.value, args.max_width) for r in results]
                numeric = [_is_number(r.value) for r in results]
                write(render_table(header, [row], numeric))
            else:
                indent = 2 if args.format == "json" else None
                write(json.dumps(aggregation_json(results), indent=indent, ensure_ascii=False))
                write("\n")
            return 0
        limit = args.limit
        if args.format == "table" and limit is None:
            limit = _TABLE_LIMIT
        results_iter = iter(query.fetch())
        if args.format == "table":
            shown = list(itertools.islice(results_iter, limit))
            more = limit is not None and args.limit is None and next(results_iter, None) is not None
            write(_entity_table(shown, args.max_width, client.project, args.namespace))
            noun = "entity" if len(shown) == 1 else "entities"
            write(f"({len(shown)} {noun})\n")
            if more:
                _note(args, f"only the first {limit} results are shown; pass --limit N for more")
            return 0
        chosen = itertools.islice(results_iter, limit) if limit is not None else results_iter
        if args.format == "jsonl":
            for entity in chosen:
                write(json.dumps(entity_to_json(entity), ensure_ascii=False, allow_nan=False))
                write("\n")
        else:
            write("[")
            for i, entity in enumerate(chosen):
                write(",\n" if i else "\n")
                write(json.dumps(entity_to_json(entity), ensure_ascii=False, allow_nan=False))
            write("\n]\n")
        return 0


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _entity_table(
    entities: Sequence[Entity], max_width: int, project: str, namespace: str | None
) -> str:
    names: dict[str, None] = {}
    for entity in entities:
        for name in entity:
            names.setdefault(name, None)
    columns = list(names)
    context = (project, namespace or None)
    rows = []
    numeric = [True] * len(columns)
    seen = [False] * len(columns)
    for entity in entities:
        key = entity.key
        row = [format_value(key, max_width, context) if key is not None else ""]
        for i, name in enumerate(columns):
            if name in entity:
                value = entity[name]
                row.append(format_value(value, max_width, context))
                seen[i] = True
                numeric[i] = numeric[i] and _is_number(value)
            else:
                row.append("")
        rows.append(row)
    flags = [False] + [n and s for n, s in zip(numeric, seen)]
    return render_table(["key", *columns], rows, flags)


# -- indexes -----------------------------------------------------------------------------------


def cmd_indexes_status(args: argparse.Namespace) -> int:
    """``datastore-lite indexes status``."""
    from ._index_sync import index_status
    from .indexes import load_index_yaml

    yaml_path = _index_yaml_path(args, required=False)
    wanted = load_index_yaml(yaml_path) if yaml_path is not None else None
    with _closing(_open_client(args)) as client:
        rows = index_status(client._datastore_api)
    registered = {str(r["yaml"]) for r in rows}
    records: list[dict[str, Any]] = []
    wanted_yaml = {ix.to_yaml() for ix in wanted} if wanted is not None else None
    for r in rows:
        note = ""
        if wanted_yaml is not None and r["yaml"] not in wanted_yaml:
            note = "not in index.yaml: `indexes vacuum` drops it"
        records.append(
            {
                "kind": r["kind"],
                "ancestor": bool(r["ancestor"]),
                "properties": [list(p) for p in _pairs(r["properties"])],
                "state": r["state"],
                "entries": r["entries"],
                "note": note,
            }
        )
    for ix in wanted or ():
        if ix.to_yaml() not in registered:
            records.append(
                {
                    "kind": ix.kind,
                    "ancestor": ix.ancestor,
                    "properties": [[p.name, p.direction] for p in ix.properties],
                    "state": "new",
                    "entries": None,
                    "note": "in index.yaml, not registered: `indexes build` builds it",
                }
            )
    records.sort(key=lambda r: (r["kind"], r["ancestor"], r["properties"]))
    write = _stdout_writer()
    if args.format == "json":
        write(json.dumps(records, indent=2, ensure_ascii=False) + "\n")
        return 0
    if not records:
        write("no composite indexes (built-in single-property indexes serve the other queries)\n")
        return 0
    header = ["kind", "ancestor", "properties", "state", "entries", "note"]
    table = [
        [
            r["kind"],
            "yes" if r["ancestor"] else "no",
            ", ".join(n if d == "asc" else f"{n} {d}" for n, d in r["properties"]),
            r["state"],
            "-" if r["entries"] is None else f"{r['entries']:,}",
            r["note"],
        ]
        for r in records
    ]
    write(render_table(header, table, [False, False, False, False, True, False]))
    return 0


def _pairs(value: object) -> list[tuple[str, str]]:
    assert isinstance(value, list)
    return [(str(name), str(direction)) for name, direction in value]


def cmd_indexes_build(args: argparse.Namespace) -> int:
    """``datastore-lite indexes build``."""
    from ._index_sync import register_indexes
    from ._registry import BUILDING
    from .indexes import load_index_yaml

    yaml_path = _index_yaml_path(args, required=True)
    assert yaml_path is not None
    wanted = load_index_yaml(yaml_path)
    with _closing(_open_client(args)) as client:
        api = client._datastore_api
        register_indexes(api, wanted)
        api.registry.reload()
        todo = [e for es in api.registry.composites.values() for e in es if e.state == BUILDING]
        _build_with_progress(args, api, todo)
        serving = sum(len(es) for es in api.registry.composites.values())
    _note(args, f"{len(todo)} built; {serving} composite indexes registered ({yaml_path})")
    return 0


def cmd_indexes_vacuum(args: argparse.Namespace) -> int:
    """``datastore-lite indexes vacuum``."""
    from ._index_sync import vacuum
    from .indexes import load_index_yaml

    yaml_path = _index_yaml_path(args, required=True)
    assert yaml_path is not None
    keep = load_index_yaml(yaml_path)
    wanted = {ix.definition for ix in keep}
    with _closing(_open_client(args)) as client:
        api = client._datastore_api
        api.registry.reload()
        doomed = [
            e
            for es in api.registry.composites.values()
            for e in es
            if e.index.definition not in wanted
        ]
        if not doomed:
            _note(args, f"nothing to drop: every composite index is in {yaml_path}")
            return 0
        write = _stdout_writer()
        write(f"indexes not in {yaml_path}:\n")
        for entry in sorted(doomed, key=lambda e: _label(e.index)):
            write(f"  {_label(entry.index)}  ({entry.state})\n")
        if args.dry_run:
            return 0
        if not args.yes and not _confirm(f"drop these {len(doomed)} indexes and their entries?"):
            raise CommandError("nothing dropped (answer y to confirm, or pass --yes)")
        dropped = vacuum(api, keep)
    _note(args, f"dropped {len(dropped)} indexes")
    return 0


def _confirm(question: str) -> bool:
    sys.stdout.flush()
    print(f"{question} [y/N] ", end="", file=sys.stderr, flush=True)
    try:
        answer = sys.stdin.readline()
    except (OSError, ValueError):
        answer = ""
    if not answer:
        print(file=sys.stderr)
    return answer.strip().lower() in ("y", "yes")


# -- export / import ---------------------------------------------------------------------------


def cmd_export(args: argparse.Namespace) -> int:
    """``datastore-lite export``."""
    from ._export import count_stored, dumps_entity, row_to_entity, select_partitions, stored_rows

    with _closing(_open_client(args)) as client:
        api = client._datastore_api
        api.consistency.apply_all()
        parts = select_partitions(
            api,
            project=args.project,
            namespaces=[args.namespace] if args.namespace is not None else None,
        )
        if args.database is not None:
            parts = [p for p in parts if p.database == args.database]
        kinds = args.kind
        total = count_stored(api, parts, kinds)
        label = "export" if args.output == "-" else args.output
        count = 0
        with _output(args.output) as out, _new_progress(args, total, label) as bar:
            for row in stored_rows(api, parts, kinds):
                out.write(dumps_entity(row_to_entity(row)))
                out.write("\n")
                count += 1
                bar.update()
    where = "stdout" if args.output == "-" else args.output
    _note(args, f"exported {count} {'entity' if count == 1 else 'entities'} to {where}")
    return 0


@contextlib.contextmanager
def _output(path: str) -> Iterator[TextIO]:
    """stdout, or a file written under a temporary name and renamed once complete."""
    if path == "-":
        yield sys.stdout
        sys.stdout.flush()
        return
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8", newline="\n") as handle:
            yield handle
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _count_lines(path: str) -> int:
    """Lines of a file (one entity each), counted in 1 MiB chunks for the progress total."""
    count = 0
    last = b"\n"
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            count += chunk.count(b"\n")
            last = chunk[-1:]
    return count + (last != b"\n")


def cmd_import(args: argparse.Namespace) -> int:
    """``datastore-lite import FILE``."""
    from ._export import read_lines

    name = "<stdin>" if args.file == "-" else args.file
    total = None if args.file == "-" else _count_lines(args.file)
    importer = _Importer(args)
    try:
        with _input(args.file) as stream, _new_progress(args, total, name) as bar:
            for number, _size, entity in read_lines(stream, name):
                importer.add(number, entity)
                bar.update()
            importer.flush()
    finally:
        importer.close()
    count = importer.stored
    _note(args, f"imported {count} {'entity' if count == 1 else 'entities'} from {name}")
    return 0


@contextlib.contextmanager
def _input(path: str) -> Iterator[IO[bytes]]:
    if path == "-":
        yield sys.stdin.buffer
        return
    with open(path, "rb") as handle:
        yield handle


class _Importer:
    """Buffers entities into commits of one (project, database), ``batch_size`` at most."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.batch_size: int = args.batch_size
        self.name = "<stdin>" if args.file == "-" else args.file
        self.clients: dict[tuple[str, str | None], Client] = {}
        self.buffer: list[tuple[int, Entity]] = []
        self.partition: tuple[str, str | None] | None = None
        self.stored = 0

    def add(self, line: int, entity: Entity) -> None:
        assert entity.key is not None  # loads_entity requires a key
        partition = (entity.key.project, entity.key.database)
        if self.buffer and (partition != self.partition or len(self.buffer) >= self.batch_size):
            self.flush()
        self.partition = partition
        self.buffer.append((line, entity))

    def _client(self, partition: tuple[str, str | None]) -> Client:
        client = self.clients.get(partition)
        if client is None:
            project, database = partition
            client = _open_client(self.args, project=project, database=database or "")
            self.clients[partition] = client
        return client

    def flush(self) -> None:
        from . import exceptions

        if not self.buffer:
            return
        assert self.partition is not None
        client = self._client(self.partition)
        batch, self.buffer = self.buffer, []
        try:
            _retry(lambda: client.put_multi([e for _, e in batch]))
        except (ValueError, TypeError, exceptions.BadRequest):
            # find the culprit: store one by one up to it, so the error names its line
            for line, entity in batch:
                try:
                    _retry(lambda entity=entity: client.put(entity))  # type: ignore[misc]
                except (ValueError, TypeError, exceptions.BadRequest) as exc:
                    raise CommandError(f"{self.name}:{line}: {_one_line(exc)}") from exc
                self.stored += 1
            return
        self.stored += len(batch)

    def close(self) -> None:
        for client in self.clients.values():
            client.close()


def _retry(call: Callable[[], None], attempts: int = 5) -> None:
    """Retry a commit that lost a race (Aborted) with a short backoff."""
    from . import exceptions

    for attempt in range(attempts):
        try:
            call()
            return
        except exceptions.Aborted:
            if attempt == attempts - 1:
                raise
            time.sleep(0.05 * 2**attempt)


# -- stats -------------------------------------------------------------------------------------


def cmd_stats(args: argparse.Namespace) -> int:
    """``datastore-lite stats``."""
    from ._codec import decode_body
    from ._export import count_stored, select_partitions, stored_rows
    from ._ordering import decode_path
    from .indexes import composite_values, index_values

    with _closing(_open_client(args)) as client:
        api = client._datastore_api
        api.consistency.apply_all()
        api.registry.reload()
        parts = select_partitions(
            api,
            project=args.project,
            namespaces=[args.namespace] if args.namespace is not None else None,
        )
        if args.database is not None:
            parts = [p for p in parts if p.database == args.database]
        total = count_stored(api, parts, args.kind)
        empty_null = api.profile.empty_list_is_null
        # (project, database, namespace, kind) -> [entities, bytes, index entries]
        sums: dict[tuple[str, str, str, str], list[int]] = {}
        with _new_progress(args, total, "stats") as bar:
            for row in stored_rows(api, parts, args.kind):
                part = row.partition
                slot = (part.project, part.database, part.namespace, row.kind)
                acc = sums.get(slot)
                if acc is None:
                    acc = sums[slot] = [0, 0, 0]
                props, exclude = decode_body(row.body)
                values = index_values(props, exclude, empty_null)
                entries = sum(len(v) for v in values.values())
                composites = api.registry.writable(row.kind)
                if composites:
                    path = decode_path(row.key)
                    for entry in composites:
                        entries += len(composite_values(entry.index, values, path))
                acc[0] += 1
                acc[1] += len(row.key) + len(row.body)
                acc[2] += entries
                bar.update()
    records: list[dict[str, Any]] = [
        {
            "project": project,
            "database": database,
            "namespace": namespace,
            "kind": kind,
            "entities": acc[0],
            "bytes": acc[1],
            "index_entries": acc[2],
        }
        for (project, database, namespace, kind), acc in sorted(sums.items())
    ]
    write = _stdout_writer()
    if args.format == "json":
        write(json.dumps(records, indent=2, ensure_ascii=False) + "\n")
        return 0
    if not records:
        write("no entities\n")
        return 0
    show_project = len({(r["project"], r["database"]) for r in records}) > 1
    header = (["project", "database"] if show_project else []) + [
        "namespace",
        "kind",
        "entities",
        "size",
        "index entries",
    ]
    table: list[list[str]] = []
    for r in records:
        cells = [str(r["project"]), str(r["database"]) or "(default)"] if show_project else []
        cells += [
            str(r["namespace"]) or "(default)",
            str(r["kind"]),
            f"{r['entities']:,}",
            format_size(int(r["bytes"])),
            f"{r['index_entries']:,}",
        ]
        table.append(cells)
    totals = [sum(int(r[k]) for r in records) for k in ("entities", "bytes", "index_entries")]
    table.append(
        ([""] * 2 if show_project else [])
        + ["total", "", f"{totals[0]:,}", format_size(totals[1]), f"{totals[2]:,}"]
    )
    numeric = [False] * (len(header) - 3) + [True, True, True]
    write(render_table(header, table, numeric, footer=True))
    return 0


# -- main --------------------------------------------------------------------------------------


def _one_line(exc: BaseException) -> str:
    """The error as one line: the missing-index YAML becomes ``Kind(prop, prop desc)``."""
    message = str(exc).strip() or type(exc).__name__
    marker = "recommended index is:"
    if marker in message:
        from .indexes import parse_index_yaml

        head, _, yaml_text = message.partition(marker)
        try:
            indexes = parse_index_yaml("indexes:\n" + yaml_text.strip("\n") + "\n")
        except ValueError:
            indexes = ()
        if indexes:
            wanted = ", ".join(_label(ix) for ix in indexes)
            return f"{head}{marker} {wanted} (add it to index.yaml)"
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    return " ".join(line.strip() for line in message.splitlines() if line.strip())


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``datastore-lite`` command; returns the exit status."""
    from . import exceptions
    from .indexes import IndexYamlError

    arguments = list(argv) if argv is not None else sys.argv[1:]
    try:
        parser = build_parser(arguments)
        args = parser.parse_args(arguments)
    except SystemExit as exc:  # --help, --version, usage errors (status 2)
        return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 2
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (e.g. `| head`): not an error worth a message
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return 1
    except (
        CommandError,
        exceptions.DatastoreLiteError,
        IndexYamlError,
        ValueError,
        TypeError,
        OSError,
    ) as exc:
        if args.debug:
            traceback.print_exc()
        print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
