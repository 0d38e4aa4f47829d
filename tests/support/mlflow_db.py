"""Fresh MLflow SQLite tracking DBs for the tests, without re-running MLflow's migrations.

A new SQLite DB costs MLflow ~2 s of schema creation (``create_all`` plus ~100 alembic
migrations, one commit each). The session makes one migrated, EMPTY DB with exactly the
function MLflow runs on a new DB, and every test that needs a fresh registry gets a file
copy of it. The copy holds no experiment: on first open MLflow creates its ``Default``
experiment with that store's own artifact root, just as on a brand-new DB. Tests of the
first-time creation itself (e.g. two processes racing on a missing DB) must not use this.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest


def scratch_dir(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """A fresh folder, in RAM (/dev/shm) when possible; the caller removes it.

    MLflow's SQLite store commits a lot, and a commit costs ~18 ms of fsync on this
    machine's disk against ~0.1 ms on tmpfs. The DB is still a real SQLite file; only the
    storage medium differs.
    """
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        return Path(tempfile.mkdtemp(prefix=f"churn-{name}-", dir=shm))
    return tmp_path_factory.mktemp(name)


@pytest.fixture(scope="session")
def mlflow_db_template(tmp_path_factory: pytest.TempPathFactory):
    """An empty MLflow tracking DB at MLflow's latest schema, made once per session."""
    import sqlalchemy
    from mlflow.store.db.utils import _initialize_tables, _verify_schema

    folder = scratch_dir(tmp_path_factory, "mlflow-template")
    template = folder / "template.db"
    engine = sqlalchemy.create_engine(f"sqlite:///{template}")
    try:
        _initialize_tables(engine)  # what SqlAlchemyStore runs on a DB without tables
        _verify_schema(engine)
    finally:
        engine.dispose()
    yield template
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def new_mlflow_db(mlflow_db_template: Path) -> Callable[[Path], str]:
    """Makes ``<folder>/mlflow.db`` a copy of the template and returns its tracking URI."""

    def make(folder: Path) -> str:
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / "mlflow.db"
        if target.exists():
            raise FileExistsError(f"{target} exists: a fresh MLflow DB needs a new path")
        shutil.copyfile(mlflow_db_template, target)
        return f"sqlite:///{target}"

    return make
