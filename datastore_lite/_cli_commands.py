"""The commands of ``datastore-lite`` (the parser and ``main`` live in ``cli.py``).

Each ``cmd_*`` takes the parsed arguments and returns the exit status; failures raise and
``cli.main`` turns them into one line on stderr. Library modules are imported inside the
commands, so ``datastore-lite --help`` stays fast.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import IO, TYPE_CHECKING, Any, TextIO

from ._cli_format import aggregation_json, format_index, format_size, format_value, render_table

if TYPE_CHECKING:
    from ._api import LocalDatastoreAPI
    from ._export import Partition
    from ._progress import Progress
    from ._registry import CompositeIndex
    from .client import Client
    from .entity import Entity

__all__ = [
    "IMPORT_BATCH",
    "CommandError",
    "cmd_export",
    "cmd_gql",
    "cmd_import",
    "cmd_indexes_build",
    "cmd_indexes_status",
    "cmd_indexes_vacuum",
    "cmd_stats",
    "index_label",
    "one_line",
    "redact",
]

IMPORT_BATCH = 500  # SEMANTICS.md §7: at most 500 mutations per commit
_TABLE_LIMIT = 1000
# scheme://user:password@host -> scheme://user:***@host
_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s]*@", re.IGNORECASE)


class CommandError(Exception):
    """A failure the command reports as one line (exit status 1)."""


def redact(text: str) -> str:
    """``text`` with the passwords of database URLs replaced by ``***``."""
    return _PASSWORD.sub(r"\1***@", text)


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
    from . import exceptions
    from .client import Client

    try:
        return Client(
            project=project if project is not None else args.project,
            namespace=namespace,
            database=database if database is not None else args.database,
            url=args.url,
            index_yaml=os.devnull,
            profile=args.profile,
            consistency=args.consistency or "strong",
        )
    except exceptions.DatastoreLiteError:
        raise
    except Exception as exc:
        # the URL parsers' own errors ("invalid literal for int()") do not say what was
        # being parsed
        url = args.url or os.environ.get("DATASTORE_LITE_URL")
        if url and str(url) not in str(exc):
            raise CommandError(f"cannot open the database at {url}: {one_line(exc)}") from exc
        raise


@contextlib.contextmanager
def _closing(client: Client) -> Iterator[Client]:
    try:
        yield client
    finally:
        client.close()


def index_label(index: Any) -> str:
    return format_index(
        index.kind, index.ancestor, [(p.name, p.direction) for p in index.properties]
    )


def _build_with_progress(
    args: argparse.Namespace, api: LocalDatastoreAPI, entries: Sequence[CompositeIndex]
) -> None:
    from ._index_sync import build_index

    for entry in sorted(entries, key=lambda e: index_label(e.index)):
        label = index_label(entry.index)
        started = time.monotonic()
        bar = _new_progress(args, None, label)

        with bar:
            scanned = build_index(api, entry, bar.set)
        _note(
            args,
            f"built {label}: {scanned} entities in {time.monotonic() - started:.1f}s, now serving",
        )


def _new_progress(args: argparse.Namespace, total: int | None, label: str) -> Progress:
    from ._progress import Progress

    return Progress(total, label, stream=sys.stderr, force=_progress_force(args))


def _stdout_writer() -> Callable[[str], object]:
    return sys.stdout.write


def _utf8_stdout() -> None:
    """JSON output is UTF-8 whatever the locale says (JSON Lines requires it)."""
    encoding = (getattr(sys.stdout, "encoding", None) or "utf-8").lower().replace("-", "")
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if encoding != "utf8" and reconfigure is not None:
        sys.stdout.flush()
        reconfigure(encoding="utf-8")


# -- gql ---------------------------------------------------------------------------------------


def cmd_gql(args: argparse.Namespace) -> int:
    """``datastore-lite gql QUERY``."""
    import itertools

    from ._export import entity_to_json
    from .aggregation import AggregationQuery

    yaml_path = _index_yaml_path(args, required=False)
    positional, named = _bindings(args.bind)
    with _closing(_open_client(args, namespace=args.namespace or None)) as client:
        if yaml_path is not None:
            # as Client(index_yaml=...) does, with progress bars for new indexes
            from ._index_sync import register_indexes
            from .indexes import load_index_yaml

            api = client._datastore_api
            api.index_yaml = yaml_path
            client.index_yaml = yaml_path
            _build_with_progress(args, api, register_indexes(api, load_index_yaml(yaml_path)))
        query = client.gql(args.query, *positional, **named)
        if args.format != "table":
            _utf8_stdout()
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


def _bindings(specs: Sequence[str]) -> tuple[list[Any], dict[str, Any]]:
    """``--bind`` values: ``@1``, ``@2``... (in order) and ``@name``."""
    from ._export import value_from_json

    numbered: dict[int, Any] = {}
    named: dict[str, Any] = {}
    for spec in specs:
        name, equals, text = spec.partition("=")
        if not equals or not name:
            raise CommandError(f"--bind expects NAME=VALUE, not {spec!r}")
        try:
            value: Any = json.loads(text)
        except ValueError:
            value = text
        if isinstance(value, dict):
            value = value_from_json(value, f"--bind {name}")
        elif isinstance(value, list):
            value = [value_from_json(v) if isinstance(v, dict) else v for v in value]
        if name.isdigit():
            numbered[int(name)] = value
        else:
            named[name] = value
    if numbered and sorted(numbered) != list(range(1, len(numbered) + 1)):
        raise CommandError(f"--bind numbers must be 1..{len(numbered)}, got {sorted(numbered)}")
    return [numbered[i] for i in sorted(numbered)], named


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
        for entry in sorted(doomed, key=lambda e: index_label(e.index)):
            write(f"  {index_label(entry.index)}  ({entry.state})\n")
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
    from ._export import count_stored, dumps_entity, row_to_entity, stored_rows

    with _closing(_open_client(args)) as client:
        api = client._datastore_api
        api.consistency.apply_all()
        parts = _partitions(args, api)
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


def _partitions(args: argparse.Namespace, api: LocalDatastoreAPI) -> list[Partition]:
    """The partitions --project, --database and --namespace select (all by default)."""
    from ._export import select_partitions

    namespaces = [args.namespace] if args.namespace is not None else None
    parts = select_partitions(api, project=args.project, namespaces=namespaces)
    if args.database is not None:
        parts = [p for p in parts if p.database == args.database]
    return parts


@contextlib.contextmanager
def _output(path: str) -> Iterator[TextIO]:
    """stdout, or a file written under a temporary name and renamed once complete."""
    if path == "-":
        _utf8_stdout()
        yield sys.stdout
        sys.stdout.flush()
        return
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        try:
            handle = open(tmp, "w", encoding="utf-8", newline="\n")  # noqa: SIM115
        except OSError as exc:
            raise CommandError(f"cannot write {path}: {exc.strerror}") from exc
        with handle:
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
            try:
                for number, _size, entity in read_lines(stream, name):
                    importer.add(number, entity)
                    bar.update()
            finally:
                # what came before a bad line is stored, nothing after it
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
                    raise CommandError(f"{self.name}:{line}: {one_line(exc)}") from exc
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
    from ._export import count_stored, kind_stats

    with _closing(_open_client(args)) as client:
        api = client._datastore_api
        api.consistency.apply_all()
        parts = _partitions(args, api)
        total = count_stored(api, parts, args.kind)
        with _new_progress(args, total, "stats") as bar:
            records = kind_stats(api, parts, args.kind, bar.update)
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


def one_line(exc: BaseException) -> str:
    """The error as one line, without database passwords.

    Only the first line of a message is kept, except that a missing-index error's YAML
    becomes ``Kind(prop, prop desc)``; api_core-style errors lose their numeric code.
    """
    message = getattr(exc, "message", None) if _is_call_error(exc) else None
    if not isinstance(message, str):
        message = str(exc)
    message = message.strip() or type(exc).__name__
    marker = "recommended index is:"
    if marker in message:
        from .indexes import parse_index_yaml

        head, _, yaml_text = message.partition(marker)
        try:
            indexes = parse_index_yaml("indexes:\n" + yaml_text.strip("\n") + "\n")
        except ValueError:
            indexes = ()
        if indexes:
            wanted = ", ".join(index_label(ix) for ix in indexes)
            return redact(f"{head}{marker} {wanted} (add it to index.yaml)")
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        return redact(f"{exc.filename}: {exc.strerror}")
    # the first line says what is wrong; the rest is detail (a GQL excerpt with a caret,
    # a driver's hint) that --debug shows
    return redact(message.splitlines()[0].strip())


def _is_call_error(exc: BaseException) -> bool:
    from .exceptions import DatastoreLiteError

    return isinstance(exc, DatastoreLiteError)
