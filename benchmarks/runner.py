"""Run the selected workloads on every backend beside the baselines, in one process and run.

Order: the emulator's column first (one in-memory emulator serves every backend's row),
then per backend a datastore_lite store and a raw store side by side, each workload run on
lite then raw before the next one (so machine noise hits both alike), then W10 in child
processes. A step that fails is recorded (``n/a (feature missing: …)`` or ``error: …``) and
the run goes on.
"""

from __future__ import annotations

import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

from .config import Config
from .data import DataSet, write_index_yaml
from .progress import Progress
from .scaling import ChildError, run_w10, run_w10_isolated
from .stores import Locations, Store, StoreSpec, open_store
from .workloads import (
    METRICS,
    STEPS,
    Context,
    Measurement,
    Metric,
    describe_error,
    load_dataset,
    w10_metrics,
)

__all__ = ["RunResult", "run"]

Key = tuple[str, str, str]  # (metric id, backend, impl)
_DATA_WORKLOADS = ("W2", "W3", "W4", "W5", "W6", "W7", "W8", "W9")


@dataclass
class RunResult:
    """Everything measured in one run, keyed by (metric id, backend, impl)."""

    config: Config
    metrics: list[Metric]
    cells: dict[Key, Measurement] = field(default_factory=dict)
    started: float = field(default_factory=time.time)
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    def cell(self, metric: str, backend: str, impl: str) -> Measurement | None:
        return self.cells.get((metric, backend, impl))


def _selected_metrics(config: Config) -> list[Metric]:
    out: list[Metric] = []
    for wid in config.workloads:
        if wid == "W10":
            out.extend(w10_metrics(sorted(config.w10_sizes)))
        else:
            out.extend(METRICS[metric_id] for metric_id, _ in STEPS[wid])
    return out


def _pg_problem(admin_url: str) -> str | None:
    try:
        import psycopg

        with psycopg.connect(admin_url, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
        return None
    except Exception as exc:
        return f"n/a (PostgreSQL unreachable at {admin_url}: {type(exc).__name__})"


class _Run:
    def __init__(self, config: Config, progress: Progress | None) -> None:
        self.config = config
        self.metrics = _selected_metrics(config)
        self.result = RunResult(config, self.metrics)
        self.progress = progress or Progress(1, stream=None)
        self.dataset = DataSet(config.photos, config.per_user, config.seed)
        self.locations = Locations(config.pg_admin_url, config.tmp_dir)
        self.index_yaml = write_index_yaml(self.locations.directory)

    # -- bookkeeping -----------------------------------------------------------------------

    def record(self, metric: str, backend: str, impl: str, m: Measurement) -> None:
        self.result.cells[(metric, backend, impl)] = m

    def mark_all(self, backend: str, impl: str, note: str) -> None:
        for metric in self.metrics:
            if impl in metric.impls:
                self.record(metric.id, backend, impl, Measurement(note=note))

    def plan_weight(self) -> float:
        per_backend = 0.0
        for wid in self.config.workloads:
            if wid == "W10":
                per_backend += 2 * 6
            elif wid == "W11":
                per_backend += 2
            else:
                per_backend += 2 * len(STEPS[wid])
        total = per_backend * len(self.config.backends)
        if self.config.emulator:
            total += sum(len(STEPS[w]) for w in self.config.workloads if w not in ("W10", "W11"))
        if "W1" not in self.config.workloads and any(
            w in self.config.workloads for w in _DATA_WORKLOADS
        ):
            total += 2 * len(self.config.backends) + (1 if self.config.emulator else 0)
        return total

    def step(
        self,
        metric_id: str,
        fn: Callable[[Store, Context], Measurement],
        store: Store,
        ctx: Context,
        label: str,
    ) -> Measurement:
        self.progress.start(label)
        ctx.tick = self.progress.tick
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                m = fn(store, ctx)
        except Exception as exc:
            m = Measurement(note=describe_error(exc))
            if m.note.startswith("error"):
                m.extra["traceback"] = traceback.format_exc()
        self.progress.finish(_summary(METRICS.get(metric_id), m))
        return m

    # -- phases ----------------------------------------------------------------------------

    def run(self) -> RunResult:
        self.progress.total = self.plan_weight()
        try:
            self.run_emulator()
            for backend in self.config.backends:
                self.run_backend(backend)
        finally:
            self.progress.close()
            self.locations.cleanup()
        self.result.seconds = time.time() - self.result.started
        return self.result

    def _needs_data(self) -> bool:
        return any(w in self.config.workloads for w in ("W1", *_DATA_WORKLOADS))

    def _run_workloads(
        self, backend: str, stores: dict[str, tuple[Store, StoreSpec]], contexts: dict[str, Context]
    ) -> None:
        """The workloads W1-W9 and W11 on ``stores`` (impl -> store), lite before raw."""
        workloads = [w for w in self.config.workloads if w != "W10"]
        loaded: dict[str, bool] = {}
        if self._needs_data() and "W1" not in workloads:
            workloads.insert(0, "load")
        for wid in workloads:
            if wid == "load":
                for impl, (store, _spec) in stores.items():
                    label = f"load data · {backend} · {impl}"
                    m = self.step("load", _load_step, store, contexts[impl], label)
                    loaded[impl] = m.value is not None
                continue
            for metric_id, fn in STEPS[wid]:
                metric = METRICS[metric_id]
                for impl, (store, _spec) in stores.items():
                    if impl not in metric.impls:
                        continue
                    if wid != "W1" and wid != "W11" and loaded.get(impl) is False:
                        self.record(
                            metric_id, backend, impl, Measurement(note="n/a (no data: W1 failed)")
                        )
                        continue
                    label = f"{metric_id} · {backend} · {impl}"
                    m = self.step(metric_id, fn, store, contexts[impl], label)
                    self.record(metric_id, backend, impl, m)
                    if wid == "W1":
                        loaded[impl] = m.value is not None

    def run_emulator(self) -> None:
        from datastore_lite.testing.emulator import Emulator, emulator_installed

        impl = "emulator"
        if not self.config.emulator:
            self.mark_all(impl, impl, "skipped (--no-emulator)")
            return
        if not emulator_installed():
            self.mark_all(impl, impl, "not installed")
            return
        self.progress.start("starting the Datastore emulator")
        try:
            emulator = Emulator(consistency=1.0).start()
        except Exception as exc:
            self.progress.finish("failed")
            self.mark_all(impl, impl, f"error: emulator did not start: {exc}")
            return
        self.progress.finish("started")
        try:
            spec = StoreSpec("emulator", "emulator", emulator.host, project="bench")
            store = open_store(spec)
            c = self.config
            data = DataSet(min(c.photos, c.emulator_photos), c.per_user, c.seed)
            ctx = Context(c, data, impl, impl, spec)
            self._run_workloads(impl, {impl: (store, spec)}, {impl: ctx})
            store.close()
        finally:
            emulator.stop()

    def run_backend(self, backend: str) -> None:
        if backend == "postgresql":
            problem = _pg_problem(self.config.pg_admin_url)
            if problem:
                for impl in ("lite", "raw"):
                    self.mark_all(backend, impl, problem)
                return
        stores: dict[str, tuple[Store, StoreSpec]] = {}
        contexts: dict[str, Context] = {}
        workloads = [w for w in self.config.workloads if w != "W10"]
        try:
            if workloads:
                for impl in ("lite", "raw"):
                    try:
                        spec = StoreSpec(
                            impl,
                            backend,
                            self.locations.new(backend, impl),
                            self.index_yaml,
                            self.config.consistency,
                        )
                        stores[impl] = (open_store(spec), spec)
                        contexts[impl] = Context(
                            self.config,
                            self.dataset,
                            impl,
                            backend,
                            spec,
                            new_store=self._fresh_store_factory(backend, impl),
                        )
                    except Exception as exc:
                        self.mark_all(
                            backend, impl, f"error: cannot open store: {describe_error(exc)}"
                        )
                self._run_workloads(backend, stores, contexts)
        finally:
            for store, _spec in stores.values():
                try:
                    store.close()
                except Exception:
                    pass
        if "W10" in self.config.workloads:
            for impl in ("lite", "raw"):
                self.run_w10(backend, impl)

    def _fresh_store_factory(self, backend: str, impl: str) -> Callable[[str], Store]:
        def new_store(consistency: str) -> Store:
            spec = StoreSpec(
                impl, backend, self.locations.new(backend, impl), self.index_yaml, consistency
            )
            store: Store = open_store(spec)
            return store

        return new_store

    def run_w10(self, backend: str, impl: str) -> None:
        sizes = sorted(self.config.w10_sizes)
        metrics = w10_metrics(sizes)
        label = f"W10 · {backend} · {impl}"
        self.progress.start(label, weight=6)
        try:
            spec = StoreSpec(
                impl,
                backend,
                self.locations.new(backend, impl),
                self.index_yaml,
                self.config.consistency,
            )
            runner = run_w10_isolated if self.config.isolate else run_w10
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cells = runner(spec, self.config, self.progress.tick)
        except ChildError as exc:
            cells = {m.id: Measurement(note=exc.note) for m in metrics}
            self.result.errors.append(f"W10 {backend} {impl}: {exc.note}\n{exc.detail}")
        except Exception as exc:
            cells = {m.id: Measurement(note=describe_error(exc)) for m in metrics}
        for query in ("W4", "W5"):
            first = cells.get(f"W10.{query}@{_label(sizes[0])}")
            last = cells.get(f"W10.{query}@{_label(sizes[-1])}")
            if first and last and first.value and last.value:
                growth = Measurement(last.value / first.value)
                growth.note = f"{first.value:.3f} → {last.value:.3f} ms/query"
            else:
                note = (last.note if last else "") or (first.note if first else "") or "n/a"
                growth = Measurement(note=note)
            cells[f"W10.{query}.growth"] = growth
        rss = cells.get("W10.rss")
        if rss is not None and rss.value is not None:
            if backend == "sqlite-memory":
                rss.note = "the database itself is in this process's memory"
            elif backend == "postgresql":
                rss.note = "client process only (the server's memory is not counted)"
            if not self.config.isolate:
                rss.note = (rss.note + "; " if rss.note else "") + "in-process: not isolated"
        for key, m in cells.items():
            if key.startswith("W10.load@"):
                continue
            self.record(key, backend, impl, m)
        self.progress.finish(_summary(None, cells.get("W10.rss") or Measurement()))


def _label(n: int) -> str:
    from .workloads import size_label

    return size_label(n)


def _load_step(store: Store, ctx: Context) -> Measurement:
    return load_dataset(store, ctx.dataset, ctx.tick)


def _summary(metric: Metric | None, m: Measurement) -> str:
    if m.value is None:
        return m.note or "n/a"
    unit = metric.unit if metric else ""
    return f"{m.value:,.1f} {unit}".strip() + (f" ({m.note})" if m.note else "")


def run(config: Config, progress: Progress | None = None) -> RunResult:
    """Run ``config`` and return what was measured (reports are written by the caller)."""
    return _Run(config, progress).run()


def describe_cell(m: Measurement | None) -> str:
    """Short text of a cell for logs."""
    if m is None:
        return "—"
    if m.value is None:
        return m.note or "n/a"
    return f"{m.value:,.2f}"
