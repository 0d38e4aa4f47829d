"""Parses compiled pipelines with the generated protos of one KFP release, strictly.

Run by ``test_backend_floor.py`` in a throwaway environment that holds only ``protobuf``,
``googleapis-common-protos`` and the ``kfp-pipeline-spec`` / ``kfp-kubernetes`` wheels of
the floor release (they conflict with the project's pins). Unknown fields are errors, as
in the backend's Go driver. The Kubernetes protos are loaded by file path: the package's
``__init__`` imports ``kfp.dsl``, which is not installed there.

Usage: ``python strict_ir_parse.py <site dir> <documents.json>``; the JSON maps a file
name to its ``[pipeline spec, platform spec]`` documents. Prints one line per problem;
exits 1 when there is any.
"""

import importlib.util
import json
import sys
from pathlib import Path


def _load(site: Path):
    sys.path.insert(0, str(site))
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    path = site / "kfp" / "kubernetes" / "kubernetes_executor_config_pb2.py"
    spec = importlib.util.spec_from_file_location("kubernetes_executor_config_pb2", path)
    kubernetes = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(kubernetes)
    return json_format, pipeline_spec_pb2, kubernetes


def problems(site: Path, documents: dict) -> list[str]:
    """Every parse error, as ``<file> <where>: <message>``."""
    json_format, pipeline_spec_pb2, kubernetes = _load(site)
    found = []

    def parse(value, message, where):
        try:
            json_format.ParseDict(value, message, ignore_unknown_fields=False)
        except json_format.ParseError as exc:
            found.append(f"{where}: {exc}")

    for name, (pipeline_spec, platform_spec) in documents.items():
        parse(pipeline_spec, pipeline_spec_pb2.PipelineSpec(), f"{name} pipeline spec")
        parse(
            pipeline_spec.get("deploymentSpec", {}),
            pipeline_spec_pb2.PipelineDeploymentConfig(),
            f"{name} deploymentSpec",
        )
        parse(platform_spec, pipeline_spec_pb2.PlatformSpec(), f"{name} platform spec")
        platforms = platform_spec.get("platforms", {})
        executors = platforms.get("kubernetes", {}).get("deploymentSpec", {}).get("executors", {})
        for executor, config in executors.items():
            parse(
                config,
                kubernetes.KubernetesExecutorConfig(),
                f"{name} platform executor {executor}",
            )
    return found


if __name__ == "__main__":
    site_dir, documents_path = Path(sys.argv[1]), Path(sys.argv[2])
    errors = problems(site_dir, json.loads(documents_path.read_text()))
    print("\n".join(errors) if errors else "ok")
    sys.exit(1 if errors else 0)
