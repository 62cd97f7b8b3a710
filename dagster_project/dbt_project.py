"""The dbt feature-store project as Dagster sees it, and its manifest (prepared before the definitions load)."""

import os
import subprocess
from pathlib import Path

from dagster_dbt import DbtProject

from feature_store.feature_build import DBT_PROJECT_DIR, dbt_executable

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)


def ensure_manifest() -> Path:
    """`dbt parse` when the manifest is missing or older than any model, macro or project file."""
    manifest = Path(dbt_project.manifest_path)
    inputs = [
        DBT_PROJECT_DIR / "dbt_project.yml",
        *DBT_PROJECT_DIR.glob("models/**/*"),
        *DBT_PROJECT_DIR.glob("macros/**/*"),
    ]
    newest = max(p.stat().st_mtime for p in inputs if p.is_file())
    if not manifest.exists() or manifest.stat().st_mtime < newest:
        cmd = [
            dbt_executable(),
            "parse",
            "--project-dir",
            str(DBT_PROJECT_DIR),
            "--profiles-dir",
            str(DBT_PROJECT_DIR),
        ]
        env = {**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise RuntimeError(f"dbt parse failed:\n{proc.stdout[-3000:]}{proc.stderr[-2000:]}")
    return manifest
