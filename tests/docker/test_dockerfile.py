"""Static checks of docker/Dockerfile (no Docker engine exists here to build it)."""

from __future__ import annotations

import importlib.util
import re
import tomllib
from pathlib import Path

import pytest

from churn_kfp.core.config import RUNTIME_ENV

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "docker" / "Dockerfile"
BUILD_TOOLS = ("build-essential", "gcc", "g++", "make", "python3-dev", "cmake")


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        out.append((keyword.upper(), rest.strip()))
    return out


@pytest.fixture(scope="module")
def instructions():
    return _instructions(DOCKERFILE.read_text())


def _stages(instructions):
    stages, current = [], None
    for keyword, args in instructions:
        if keyword == "FROM":
            current = {"from": args, "body": []}
            stages.append(current)
        elif current is not None:
            current["body"].append((keyword, args))
    return stages


def _global_args(instructions) -> dict[str, str]:
    args = {}
    for keyword, rest in instructions:
        if keyword == "FROM":
            break
        if keyword == "ARG" and "=" in rest:
            name, value = rest.split("=", 1)
            args[name] = value
    return args


def test_multi_stage_with_pinned_base_images(instructions):
    stages = _stages(instructions)
    assert len(stages) >= 2, "expected a builder stage and a runtime stage"
    defaults = _global_args(instructions)
    for stage in stages:
        image = stage["from"].split()[0]
        image = re.sub(r"\$\{(\w+)\}", lambda m: defaults.get(m.group(1), m.group(0)), image)
        assert "$" not in image, f"base image {image} has no default"
        name = image.split("@", 1)[0].rsplit("/", 1)[-1]
        assert ":" in name, f"base image {image} is not pinned by tag"
        tag = name.split(":", 1)[1]
        assert tag != "latest" and re.match(r"3\.11(\.\d+)?-slim", tag), tag


def test_runtime_stage_is_non_root_without_build_tools(instructions):
    runtime = _stages(instructions)[-1]
    users = [args for keyword, args in runtime["body"] if keyword == "USER"]
    assert users, "the runtime stage sets no USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), users[-1]
    assert user == "1000"
    runs = " ".join(args for keyword, args in runtime["body"] if keyword == "RUN")
    for tool in BUILD_TOOLS:
        assert not re.search(rf"\b{re.escape(tool)}\b", runs), f"{tool} in the runtime stage"
    assert "apt-get install" not in runs and "pip install" not in runs
    assert any(k == "COPY" and "--from=builder" in a for k, a in runtime["body"])


def test_dependencies_come_from_the_lock(instructions):
    builder = _stages(instructions)[0]
    runs = [args for keyword, args in builder["body"] if keyword == "RUN"]
    pip_lines = [r for r in runs if "pip install" in r]
    assert any(
        re.search(r"(--constraint|-c|--requirement|-r)\s+requirements\.lock", r) for r in pip_lines
    )
    assert any("check_pins.py requirements.lock" in r for r in runs)
    assert any("pip wheel" in r for r in runs), "the project is installed as a wheel"
    assert not any(
        "pip install" in r and "--no-deps" not in r and "requirements.lock" not in r for r in runs
    )


def test_runtime_metadata(instructions):
    runtime = _stages(instructions)[-1]
    body = " ".join(f"{k} {a}" for k, a in runtime["body"])
    assert re.search(r"ARG CHURN_GIT_COMMIT", body)
    assert re.search(r"CHURN_GIT_COMMIT=\$\{CHURN_GIT_COMMIT\}", body), "ENV CHURN_GIT_COMMIT"
    for label in ("title", "version", "revision", "licenses", "description"):
        assert f"org.opencontainers.image.{label}=" in body
    cmd = [a for k, a in runtime["body"] if k == "CMD"]
    assert cmd == ['["churn", "--help"]']
    for key, value in RUNTIME_ENV.items():
        assert f"{key}={value}" in body, f"ENV {key}={value} (churn_kfp.core.config.RUNTIME_ENV)"
    for folder in ("/minio", "/s3", "/gcs"):
        assert folder in body, f"KFP launcher folder {folder} must exist for the non-root user"


def test_dockerignore_keeps_the_context_small():
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert patterns[0] == "*", "allow-list style: ignore everything, then re-include"
    included = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    for needed in ("pyproject.toml", "README.md", "requirements.lock", "src", "components"):
        assert needed in included
    assert "pipelines" in included and "docker/check_pins.py" in included
    copied = re.findall(r"^COPY (?!--from)(\S+)", DOCKERFILE.read_text(), re.M)
    for source in copied:
        assert source in included, f"COPY {source} is excluded by .dockerignore"


def _check_pins():
    spec = importlib.util.spec_from_file_location("check_pins", ROOT / "docker" / "check_pins.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_check_pins_flags_unpinned_and_mismatched_packages():
    check = _check_pins()
    pins = check.read_lock("# lock\nNumPy==2.4.6\nscikit_learn==1.9.1 ; python_version>'3'\n")
    assert pins == {"numpy": "2.4.6", "scikit-learn": "1.9.1"}
    installed = {"numpy": "2.4.6", "scikit-learn": "1.9.0", "boto3": "1.0", "pip": "25"}
    problems = check.unpinned(installed, pins)
    assert problems == [
        "boto3==1.0 is installed but not in the lock",
        "scikit-learn==1.9.0 is installed but the lock pins 1.9.1",
    ]


def test_runtime_dependencies_are_pinned_by_the_lock():
    """The build installs pyproject's dependencies constrained by the lock: pins must agree."""
    check = _check_pins()
    pins = check.read_lock((ROOT / "requirements.lock").read_text())
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for dep in deps:
        name, _, version = dep.partition("==")
        name = check.normalize(name.split("[", 1)[0])
        assert name in pins, f"{dep} is not in requirements.lock"
        assert pins[name] == version, f"{dep}: the lock pins {pins[name]}"
