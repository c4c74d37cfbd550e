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
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

from ._cli_commands import (
    IMPORT_BATCH,
    CommandError,
    cmd_export,
    cmd_gql,
    cmd_import,
    cmd_indexes_build,
    cmd_indexes_status,
    cmd_indexes_vacuum,
    cmd_stats,
    one_line,
)

__all__ = ["main"]

PROG = "datastore-lite"
_DEMO_MODULE = "datastore_lite.demo.stale_reads"


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
reads with strong consistency unless --consistency says otherwise. --bind gives the
value of @name (or @1, @2, ...): JSON (5, true, "5", [1, 2], or a typed value such as
{"timestampValue": "2024-01-01T00:00:00Z"}), else the text itself.

examples:
  datastore-lite gql "SELECT * FROM Photo WHERE tags = 'beach' ORDER BY date DESC LIMIT 10"
  datastore-lite gql "SELECT * FROM Photo WHERE likes > @n" --bind n=10
  datastore-lite gql "SELECT __key__ FROM User" --format jsonl > users.jsonl
  datastore-lite --namespace shop gql "AGGREGATE COUNT(*) OVER (SELECT * FROM Purchase)"
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
        "-b",
        "--bind",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="value of @NAME (or @1, @2...) in the query: JSON, else the text (repeatable)",
    )
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
        default=IMPORT_BATCH,
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
    if value > IMPORT_BATCH:
        raise argparse.ArgumentTypeError(f"at most {IMPORT_BATCH} (one commit), not {value}")
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


# -- main --------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``datastore-lite`` command; returns the exit status.

    0 on success, 1 when the command fails (one line on stderr), 2 for a command line
    argparse rejects, 130 when interrupted.
    """
    from . import exceptions
    from .indexes import IndexYamlError

    arguments = list(argv) if argv is not None else sys.argv[1:]
    try:
        parser = build_parser(arguments)
        args = parser.parse_args(arguments)
    except SystemExit as exc:  # --help, --version, usage errors (status 2)
        return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 2
    handler: Callable[[argparse.Namespace], int] = args.handler
    # a table on a terminal that cannot show some characters gets escapes, not a crash
    with contextlib.suppress(AttributeError, ValueError, OSError):
        sys.stdout.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
    try:
        return handler(args)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (`| head`): stop quietly, and keep Python from complaining
        # about the unflushed stdout at exit
        with contextlib.suppress(OSError, ValueError):
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
        _report(args, one_line(exc))
        return 1
    except Exception as exc:  # never a traceback without --debug, even for a bug
        _report(args, f"unexpected {type(exc).__name__}: {one_line(exc)} (--debug shows where)")
        return 1


def _report(args: argparse.Namespace, message: str) -> None:
    if getattr(args, "debug", False):
        traceback.print_exc()
    print(f"{PROG}: error: {message}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
