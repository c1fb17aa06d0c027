"""Architecture rules that carry weight (DESIGN.md): module -> core, never core -> module."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "bastion"


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_core_imports_no_module():
    """Nothing under bastion.core imports a module, the app, the CLI or the root settings."""
    offenders = []
    for path in (SRC / "core").rglob("*.py"):
        for name in _imports(path):
            if name.startswith("bastion.") and not name.startswith("bastion.core"):
                offenders.append(f"{path.relative_to(SRC)} imports {name}")
    assert offenders == []


def test_modules_use_each_other_only_through_services():
    """A module may import another module's service (or its public errors/schemas), not its internals."""
    modules = [p.name for p in SRC.iterdir() if p.is_dir() and p.name not in {"core", "migrations", "__pycache__"}]
    allowed = {"service", "errors", "schemas", "settings"}
    offenders = []
    for module in modules:
        for path in (SRC / module).rglob("*.py"):
            for name in _imports(path):
                parts = name.split(".")
                crosses = len(parts) >= 2 and parts[0] == "bastion" and parts[1] in modules and parts[1] != module
                if crosses and (len(parts) < 3 or parts[2] not in allowed):
                    offenders.append(f"{path.relative_to(SRC)} imports {name}")
    assert offenders == []


def _identity_files_imported(path: Path) -> set[str]:
    """The files of bastion.identity that ``path`` imports (``from bastion.identity import x`` counts as x)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [
                f"{node.module}.{alias.name}" if node.module == "bastion.identity" else node.module
                for alias in node.names
            ]
        else:
            continue
        found.update(name.split(".")[2] for name in names if name.startswith("bastion.identity."))
        found.update("__init__" for name in names if name == "bastion.identity")
    return found


def test_other_modules_use_identity_only_through_its_facade():
    """Outside identity, the only identity files imported are service (the Identity facade), errors, schemas
    and settings: no module reaches identity's parts (accounts, sessions, wiring, ...)."""
    allowed = {"service", "errors", "schemas", "settings"}
    offenders = []
    for path in SRC.rglob("*.py"):
        inside = path.relative_to(SRC).parts
        if inside[0] == "identity" or len(inside) == 1:  # identity itself; the app, the CLI, the module list
            continue
        offenders.extend(
            f"{path.relative_to(SRC)} imports identity.{name}" for name in _identity_files_imported(path) - allowed
        )
    assert offenders == []


def test_routers_read_the_principal_and_context_through_the_request():
    """No module's router reads the edge's context from the raw scope (``CONTEXT_KEY``, ``scope["bastion"]``)
    or casts the scope: handlers use ``AppRequest.context`` / ``.principal`` / ``.principal_or_none``."""
    offenders = []
    for path in SRC.glob("*/router.py"):
        text = path.read_text()
        for marker in ("CONTEXT_KEY", 'scope["bastion"]', 'cast("Scope"', "current_principal(", "require_principal("):
            if marker in text:
                offenders.append(f"{path.relative_to(SRC)} uses {marker}")
    assert offenders == []


def test_middleware_never_uses_base_http_middleware():
    """The edge is pure ASGI: BaseHTTPMiddleware is never used anywhere."""
    uses = [str(p.relative_to(SRC)) for p in SRC.rglob("*.py") if "BaseHTTPMiddleware" in p.read_text()]
    assert uses == []


def test_write_transactions_begin_through_the_database():
    """Outside core/db.py nothing calls ``.begin()`` itself (``engine.begin()``, ``session.begin()``): writes
    go through ``Database.begin()`` / ``transaction()``, which take SQLite's writer turn. The PostgreSQL-only
    revocation bus is the one exception."""
    exempt = {Path("core/db.py"), Path("identity/bus.py")}
    offenders = []
    for path in SRC.rglob("*.py"):
        if path.relative_to(SRC) in exempt or "migrations" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "begin"
                and not (isinstance(node.func.value, ast.Attribute) and node.func.value.attr == "db")
            ):
                offenders.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert offenders == []


def test_the_cli_loads_no_metrics_web_or_sql_library():
    """``bastion`` (which reads every module's descriptor) imports neither prometheus_client, which must be
    loaded only after ``serve`` has set PROMETHEUS_MULTIPROC_DIR for its workers, nor Litestar or SQLAlchemy."""
    import subprocess
    import sys

    heavy = "('prometheus_client', 'litestar', 'sqlalchemy')"
    probe = f"import sys, bastion.cli; print(sorted(m for m in {heavy} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]"


def test_every_route_belongs_to_a_declared_route_group(tmp_path):
    """No route falls silently into the default policy: each one's module (or the core) declares its group, so
    a webhook cannot end up in the general tier with JSON-only bodies by omission."""
    import re

    from bastion.app import create_app
    from bastion.core.edge.asgi import RoutePolicy
    from bastion.core.edge.routes import RouteTable
    from bastion.settings import Settings

    app = create_app(Settings(_env_file=None, data_dir=tmp_path))
    undeclared = RoutePolicy(tier="undeclared")
    table = RouteTable(app.route_groups, default=undeclared)
    orphans = []
    for route in app.litestar.routes:
        path = re.sub(r"\{[^}]+\}", "x", re.sub(r"\{[^}:]+:path\}", "x/y", route.path))
        for method in sorted(route.methods - {"HEAD", "OPTIONS"}):
            if table.resolve(method, path) is undeclared:
                orphans.append(f"{method} {route.path}")
    assert orphans == []


def _error_classes() -> list[type]:
    """Every AppError subclass defined in bastion (each module imported once)."""
    import importlib
    import pkgutil

    import bastion
    from bastion.core.errors import AppError

    for info in pkgutil.walk_packages(bastion.__path__, "bastion."):
        if ".migrations" not in info.name and not info.name.endswith("__main__"):
            importlib.import_module(info.name)

    def below(cls: type) -> list[type]:
        subclasses: list[type] = cls.__subclasses__()
        return [c for sub in subclasses for c in (sub, *below(sub))]

    ours = {cls for cls in below(AppError) if cls.__module__.startswith("bastion.")}  # not the tests' own
    return sorted(ours, key=lambda c: (c.__module__, c.__name__))


def test_error_codes_are_unique():
    """No two error classes define the same stable code (a subclass that defines none shares its parent's, on
    purpose: it is the same error to clients)."""
    owners: dict[str, list[str]] = {}
    for cls in _error_classes():
        if "code" in vars(cls):
            owners.setdefault(cls.code, []).append(f"{cls.__module__}.{cls.__name__}")
    assert {code: names for code, names in owners.items() if len(names) > 1} == {}


def test_every_error_class_is_drawn_in_its_files_tree():
    """Each error class appears in the hierarchy drawn in its file's docstring (httpx's ``_exceptions.py``)."""
    import sys

    missing = [
        f"{cls.__module__}.{cls.__name__}"
        for cls in _error_classes()
        if cls.__name__ not in (sys.modules[cls.__module__].__doc__ or "")
    ]
    assert missing == []


def test_each_listed_module_has_its_settings_field_and_migration_branch():
    """For every module in the list: the root settings have a field named as the module, of its descriptor's
    settings type; a module with tables has a migrations folder holding a branch labelled with its name."""
    from alembic.script import ScriptDirectory

    from bastion import migrate
    from bastion.modules import MODULES
    from bastion.settings import Settings

    scripts = ScriptDirectory.from_config(migrate.alembic_config("sqlite+aiosqlite://"))
    labels = {label for script in scripts.walk_revisions() for label in script.branch_labels or ()}
    wrong = []
    for module in MODULES:
        field = Settings.model_fields.get(module.name)
        if module.settings is not None and (field is None or field.annotation is not module.settings):
            wrong.append(f"{module.name}: Settings.{module.name} is not a {module.settings.__name__}")
        if module.models is not None and (module.migrations is None or module.name not in labels):
            wrong.append(f"{module.name}: has models but no migration branch labelled {module.name!r}")
    assert wrong == []


def test_every_module_settings_field_belongs_to_a_listed_module():
    """The root settings carry no field for a module that is not in the list (a leftover or a typo)."""
    from bastion.core.settings import CoreSettings
    from bastion.modules import MODULES
    from bastion.settings import Settings

    extra = set(Settings.model_fields) - set(CoreSettings.model_fields)
    assert extra == {m.name for m in MODULES if m.settings is not None}


def test_no_source_file_is_over_400_lines():
    """Files read in a minute: a file past 400 lines is split by concept (the house style)."""
    long = {str(p.relative_to(SRC)): n for p in SRC.rglob("*.py") if (n := len(p.read_text().splitlines())) > 400}
    assert long == {}


def test_vendor_sdks_load_with_their_first_use_not_at_start_up(tmp_path):
    """An app built and started without billing, uploads, outbound calls or a non-ASCII email never imports the
    Stripe SDK (28 MB and 0.33 s a worker), Pillow, segno, httpx (12 MB) or the confusables tables (12.6 MB):
    each is imported with its first use."""
    code = f"""
import sys, asyncio
from asgi_lifespan import LifespanManager
from bastion.app import create_app
from bastion.settings import Settings
app = create_app(Settings(_env_file=None, data_dir={str(tmp_path)!r}, allowed_hosts=["localhost"]))
async def main():
    async with LifespanManager(app):
        pass
asyncio.run(main())
heavy = ("stripe", "PIL", "segno", "httpx", "confusable_homoglyphs")
print(sorted(m for m in sys.modules if m.split(".")[0] in heavy))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"
