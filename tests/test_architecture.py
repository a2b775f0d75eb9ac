"""The rooms of the house, checked by reading every module's imports (docs/architecture.md).

Every ``import``/``from ... import`` counts, at module level or inside a function, and so does a
module named in a string that the module hands to ``importlib.import_module``: a lazy or dynamic
import is still a dependency. Rules: ``services.common`` knows no service; no service knows the
command line or the wiring module; services never import each other (they talk through Kafka and
share only ``common`` and the public gateway ``client``, which imports nothing of the server); no
import cycle among the project's modules; the pure modules reach no Kafka, Faust, websockets,
Prometheus or HTTP client, not even through another module.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "services"
COMMON = "services.common"
SERVICES = ("ingestor", "processor", "gateway", "scenario", "reference")
LIBRARIES = ("common", "client")  # below the services: any service may import them
TOP = ("services.cli", "services.catalog", "services.supervisor", "services.report")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted((ROOT / PACKAGE).rglob("*.py"))}


def _resolve(name: str, current: str, is_package: bool, level: int) -> str:
    if not level:
        return name
    base = current.split(".") if is_package else current.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def _project_target(name: str) -> str | None:
    """The project module an import of ``name`` loads (the longest existing prefix)."""
    known = modules()
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def _is_import_module(call: ast.Call) -> bool:
    func = call.func
    return (isinstance(func, ast.Attribute) and func.attr == "import_module") or (
        isinstance(func, ast.Name) and func.id == "import_module")


def imported_names(module: str) -> Iterator[str]:
    path = modules()[module]
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"
    dynamic = False
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(node.module or "", module, is_package, node.level)
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Call) and _is_import_module(node):
            dynamic = True
    if dynamic:  # a module name in any string literal may be what import_module receives
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in modules():
                yield node.value


Graph = dict[str, frozenset[str]]


@cache
def graph() -> Graph:
    edges: Graph = {}
    for module in modules():
        targets = {_project_target(name) for name in imported_names(module)}
        edges[module] = frozenset(t for t in targets if t and t != module and t != PACKAGE)
    return edges


def room(module: str) -> str:
    """``common``, ``client``, a service name, or the module itself for the top-level command line/wiring."""
    parts = module.split(".")
    if len(parts) >= 2 and parts[1] in (*SERVICES, *LIBRARIES):
        return parts[1]
    return module


def violations(allowed: dict[str, set[str]], edges: Graph | None = None) -> list[str]:
    """``a -> b`` for every import from a room to a room it may not import."""
    return sorted(f"{a} -> {b}" for a, targets in (edges or graph()).items() for b in targets
                  if room(a) in allowed and room(b) != room(a) and room(b) not in allowed[room(a)])


def command_line_imports(edges: Graph | None = None) -> list[str]:
    """Imports of the command line, the supervisor or the wiring module from common or a service."""
    return sorted(f"{a} -> {b}" for a, targets in (edges or graph()).items() if room(a) in (*SERVICES, *LIBRARIES)
                  for b in targets if b in TOP)


def test_the_reader_sees_imports_of_every_kind() -> None:
    """The reader itself: module-level, function-level, relative and import_module string imports."""
    assert modules()["services.common.settings"].name == "settings.py"
    assert "services.common.settings" in graph()["services.common.metrics"]
    assert "services.processor.app" in graph()["services.processor.cli"]          # inside a function
    assert "services.scenario.source" in graph()["services.catalog"]              # a string for import_module
    assert _resolve("x", "services.ingestor.venues.okx", False, 2) == "services.ingestor.x"
    assert all(room(m) in (*SERVICES, *LIBRARIES) or m in (*TOP, PACKAGE)
               for m in modules()), "a new room: give it rules here and in docs/architecture.md"


def test_common_imports_no_service() -> None:
    assert violations({"common": set()}) == []


def test_the_public_client_imports_nothing_of_the_server() -> None:
    assert violations({"client": set()}) == []


def test_no_service_imports_the_command_line() -> None:
    assert command_line_imports() == []


def test_ingestor_imports_no_scenario_processor_or_gateway() -> None:
    bad = [v for v in violations({"ingestor": {"common", "reference"}})
           if v.split(" -> ")[1].split(".")[1] in ("scenario", "processor", "gateway")]
    assert bad == []


def test_processor_and_gateway_do_not_import_each_other() -> None:
    bad = [v for v in violations({"processor": {"common"}, "gateway": {"common"}})
           if room(v.split(" -> ")[1]) in ("processor", "gateway")]
    assert bad == []


def test_services_share_only_common() -> None:
    assert violations({service: set(LIBRARIES) for service in SERVICES}) == []


def _cycles(edges: Graph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_cycle_finder_finds_a_cycle() -> None:
    edges = {"a": frozenset({"b"}), "b": frozenset({"c"}), "c": frozenset({"a"}), "d": frozenset({"a"})}
    assert _cycles(edges) == [["a", "b", "c"]]


def test_no_import_cycle() -> None:
    assert _cycles(graph()) == []


def test_rules_report_what_they_find() -> None:
    """Each rule fails on a planted offender, so a passing rule is not a blind one."""
    planted = dict(graph())
    planted["services.common.codec"] = planted["services.common.codec"] | {"services.gateway.protocol"}
    planted["services.processor.app"] = planted["services.processor.app"] | {"services.cli", "services.gateway"}
    assert "services.common.codec -> services.gateway.protocol" in violations({"common": set()}, planted)
    assert "services.processor.app -> services.cli" in command_line_imports(planted)
    assert "services.processor.app -> services.gateway" in violations({"processor": {"common"}}, planted)


SHARED = ("now_ms", "MINUTE_MS", "HOUR_MS", "DAY_MS", "DAY_MINUTES", "USD_QUOTES")


def test_shared_constants_and_the_clock_are_defined_once() -> None:
    """Time units, the wall clock and the USD quotes live in common (a re-export is not a definition)."""
    defined: dict[str, list[str]] = {name: [] for name in SHARED}
    for module, path in modules().items():
        for node in ast.parse(path.read_text()).body:
            names = [node.name] if isinstance(node, ast.FunctionDef) else [
                t.id for t in getattr(node, "targets", [getattr(node, "target", None)]) if isinstance(t, ast.Name)]
            for name in names:
                if name in defined:
                    defined[name].append(module)
    assert {name: where for name, where in defined.items() if len(where) != 1} == {}
    assert all(where[0].startswith(COMMON) for where in defined.values())


def test_the_map_names_every_room() -> None:
    """docs/architecture.md stays the map: every room and top module of the code is in its table."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    rooms = {f"services/{room}/" for room in (*SERVICES, *LIBRARIES)} | {f"services/{m.split('.')[1]}.py" for m in TOP}
    assert sorted(r for r in rooms if f"`{r}" not in text) == []


PURE = (
    "services.ingestor.pipeline", "services.ingestor.bars", "services.ingestor.dedupe", "services.ingestor.gaps",
    "services.processor.assetbook", "services.processor.liqbook", "services.processor.candles",
    "services.processor.watermark", "services.processor.indicators", "services.processor.signals",
    "services.processor.stage_assets", "services.processor.stage_liquidations", "services.processor.stage_sectors",
    "services.processor.capline", "services.processor.validate", "services.processor.timeutil",
    "services.processor.context", "services.processor.topology", "services.processor.packing",
    "services.gateway.protocol", "services.gateway.session", "services.gateway.state", "services.gateway.limits",
    "services.scenario.generator", "services.scenario.wire", "services.scenario.design", "services.scenario.paths",
    "services.scenario.figures", "services.common.assets", "services.common.clock", "services.common.events",
)
IO_LIBRARIES = ("aiokafka", "faust", "websockets", "prometheus_client", "confluent_kafka", "urllib.request",
                "services.common.kafka", "services.common.http")


def io_reached(module: str) -> list[str]:
    """I/O libraries ``module`` imports, itself or through any project module it imports."""
    seen, todo = {module}, [module]
    while todo:
        for target in graph()[todo.pop()]:
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return sorted(f"{m} -> {name}" for m in seen for name in set(imported_names(m))
                  if any(name == lib or name.startswith(lib + ".") for lib in IO_LIBRARIES))


def test_pure_modules_reach_no_io_library() -> None:
    """Parsers, rings, indicators, protocol and the ingest pipeline take clock and tables as arguments."""
    assert set(PURE) <= set(modules())
    assert {m: io_reached(m) for m in PURE if io_reached(m)} == {}


def test_venue_adapters_reach_no_io_library() -> None:
    """The adapters get their instrument tables handed in; the REST refresh that fills the tables
    (urllib) is ingestor.refresh, which no adapter imports."""
    venues = [m for m in modules() if m.startswith("services.ingestor.venues.")]
    assert {m: io_reached(m) for m in venues if io_reached(m)} == {}


LOADER = "services.ingestor.instruments"   # the process-wide instrument tables (snapshot file, live refresh)


def loader_reached(edges: Graph | None = None) -> list[str]:
    """``venue module -> loader`` for every adapter module (and ``venues/common.py``) that imports the
    instrument loader, itself or through any project module it imports."""
    edges = edges or graph()
    found = []
    for module in (m for m in edges if m.startswith("services.ingestor.venues.")):
        seen, todo = {module}, [module]
        while todo:
            for target in edges.get(todo.pop(), frozenset()):
                if target not in seen:
                    seen.add(target)
                    todo.append(target)
        if LOADER in seen:
            found.append(f"{module} -> {LOADER}")
    return sorted(found)


def test_venue_adapters_do_not_import_the_instrument_loader() -> None:
    """Pure means pure: an adapter parses with the table its caller hands in (the ingest command,
    the sources, the backfill), never with a process-wide one it looks up itself."""
    assert LOADER in modules()
    assert loader_reached() == []
    planted = dict(graph())
    planted["services.ingestor.venues.common"] = planted["services.ingestor.venues.common"] | {LOADER}
    assert "services.ingestor.venues.okx -> services.ingestor.instruments" in loader_reached(planted)
    assert "services.ingestor.venues.common -> services.ingestor.instruments" in loader_reached(planted)
