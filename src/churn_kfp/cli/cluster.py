"""``churn submit`` and ``churn schedule``: run the pipelines on a Kubeflow cluster.

Version policy: every ``churn submit`` uploads the checked-out code as a pipeline version
named ``<package version>-<git sha>-<spec hash>`` (reused when it is already there). A
recurring run is pinned to the version it was created with (kubeflow/pipelines#11296) and
keeps it until ``churn schedule`` runs again, which deletes and recreates it on the current
version (the API has no update: kubeflow/pipelines#7421).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from churn_kfp.core.config import EXPERIMENT_NAME, RETRAINING_PIPELINE

CONNECTION_EPILOG = """\
connection (flags win over the environment):
  KFP_HOST        KFP API base URL, e.g. http://localhost:8888 after
                  `kubectl port-forward -n kubeflow svc/ml-pipeline 8888:8888`
                  (the API server itself), or https://<kubeflow-gateway>/pipeline
  KFP_NAMESPACE   your profile namespace (multi-user Kubeflow)
  KFP_TOKEN       bearer token for the KFP API (audience pipelines.kubeflow.org), e.g.
                  `kubectl -n <ns> create token default-editor
                  --audience=pipelines.kubeflow.org`; in a pod the token file
                  KF_PIPELINES_SA_TOKEN_PATH (default
                  /var/run/secrets/kubeflow/pipelines/token) is used when present
  CHURN_IMAGE     component image (or --image; `make` sets it from IMAGE); the
                  placeholder image is refused before anything is sent

backend: KFP 2.16 or newer (read from the server's healthz; older ones are refused)
"""

VERSION_POLICY = """\
version policy:
  a recurring run is pinned to the pipeline version it was created with and keeps it;
  after `churn submit` uploads new code, run `churn schedule` again to move the
  schedule to it (it deletes and recreates the recurring run: KFP has no update).
"""


def _connection_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("connection")
    group.add_argument("--host", help="KFP API base URL (default: $KFP_HOST)")
    group.add_argument("--namespace", help="profile namespace (default: $KFP_NAMESPACE)")
    group.add_argument("--token", help="bearer token (default: $KFP_TOKEN or the SA token file)")
    group.add_argument(
        "--timeout", type=float, default=10.0, help="seconds to wait for the host to answer"
    )
    parser.add_argument(
        "--experiment", default=EXPERIMENT_NAME, help="KFP experiment (created if missing)"
    )
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="pipeline parameter, repeatable; typed from the compiled pipeline",
    )
    parser.add_argument(
        "--version-name",
        help="pipeline version name (default: <package version>-<git sha>-<spec hash>)",
    )
    parser.add_argument("--service-account", help="Kubernetes service account for the runs")
    parser.add_argument(
        "--image",
        help="component image, registry/repo:tag or registry/repo@sha256:<digest> "
        "(default: $CHURN_IMAGE)",
    )
    parser.add_argument(
        "--out-dir", default="build/pipelines", help="where the compiled YAML is written"
    )


def _prepare(args: argparse.Namespace, names: list[str]):
    """Compiles, connects; returns (client, conn, {name: (path, params, version)}).

    The image is checked first: the placeholder is refused before the server is contacted.
    """
    from churn_kfp.cli.compile import compile_pipelines
    from churn_kfp.orchestration import kfp_client
    from churn_kfp.orchestration.image import IMAGE_ENV, component_image, require_published_image
    from churn_kfp.pipelines import registry

    image = require_published_image(
        component_image({IMAGE_ENV: args.image} if args.image else None)
    )
    missing = [name for name in names if name not in registry.PIPELINES]
    if missing:
        raise kfp_client.KfpConfigError(
            f"pipeline {', '.join(missing)} is not defined in this version "
            f"(known: {', '.join(registry.PIPELINES)})"
        )
    conn = kfp_client.Connection.resolve(args.host, args.namespace, args.token)
    raw = kfp_client.parse_params(args.param)
    out_dir = Path(args.out_dir) if args.out_dir else Path(tempfile.mkdtemp(prefix="churn-"))
    paths = {path.stem: path for path in compile_pipelines(out_dir, image)}
    plans = {}
    for name in names:
        types = kfp_client.pipeline_parameters(paths[name])
        own = {key: value for key, value in raw.items() if key in types}
        plans[name] = (
            paths[name],
            kfp_client.coerce_params(own, types, name),
            args.version_name or kfp_client.version_name(paths[name]),
        )
    unknown = set(raw) - {key for name in names for key in plans[name][1]}
    if unknown:
        known = sorted({k for n in names for k in kfp_client.pipeline_parameters(paths[n])})
        raise kfp_client.ParameterError(
            f"unknown parameter(s) {', '.join(sorted(unknown))} for {', '.join(names)}; "
            f"known: {', '.join(known)}"
        )
    print(f"components run in image {image}")
    client, conn = kfp_client.connect(conn, timeout_s=args.timeout)
    print(conn.describe())
    return client, conn, plans


def _upload(client, conn, name: str, path: Path, version: str):
    from churn_kfp.orchestration import kfp_client

    ref = kfp_client.ensure_pipeline_version(
        client, conn, name, path, version, description=f"churn-kfp {name}"
    )
    pipeline_state = "created" if ref.pipeline_created else "exists"
    version_state = "uploaded" if ref.version_created else "reused (already on the server)"
    print(f"{name}: pipeline {ref.pipeline_id} ({pipeline_state})")
    print(f"{name}: version {ref.version_name} {ref.version_id} {version_state}")
    return ref


def _handle_submit(args: argparse.Namespace) -> int:
    from churn_kfp.orchestration import kfp_client
    from churn_kfp.pipelines import registry

    names = list(registry.PIPELINES) if args.pipeline == "all" else [args.pipeline]
    try:
        client, conn, plans = _prepare(args, names)
        experiment_id = None
        for name in names:
            path, params, version = plans[name]
            ref = _upload(client, conn, name, path, version)
            if args.upload_only:
                continue
            if experiment_id is None:
                experiment_id = kfp_client.ensure_experiment(client, conn, args.experiment)
            run_id = kfp_client.start_run(
                client, conn, ref, experiment_id, params, args.service_account
            )
            print(f"{name}: run {run_id} started in experiment {args.experiment}")
            print(f"  {kfp_client.run_url(conn, run_id)}")
    except (kfp_client.KfpError, ValueError) as exc:
        return _fail(exc)
    return 0


def _handle_schedule(args: argparse.Namespace) -> int:
    from churn_kfp.orchestration import kfp_client
    from churn_kfp.orchestration.cron import to_kfp_cron

    try:
        if not args.name:
            args.name = (
                f"{RETRAINING_PIPELINE}-monthly"
                if args.pipeline == RETRAINING_PIPELINE
                else f"{args.pipeline}-scheduled"
            )
        cron = to_kfp_cron(args.cron)
        if cron != " ".join(args.cron.split()):
            print(f"cron {args.cron!r} is sent to KFP as {cron!r} (6 fields, seconds first)")
        client, conn, plans = _prepare(args, [args.pipeline])
        path, params, version = plans[args.pipeline]
        ref = _upload(client, conn, args.pipeline, path, version)
        experiment_id = kfp_client.ensure_experiment(client, conn, args.experiment)
        result = kfp_client.schedule(
            client,
            conn,
            name=args.name,
            cron=cron,
            ref=ref,
            experiment_id=experiment_id,
            params=params,
            service_account=args.service_account,
        )
    except (kfp_client.KfpError, ValueError) as exc:
        return _fail(exc)
    for old in result.replaced:
        print(
            f"recurring run {args.name!r} existed ({old}): deleted and recreated, because the "
            "KFP API cannot update a recurring run (kubeflow/pipelines#7421)"
        )
    print(
        f"recurring run {args.name!r} {result.recurring_run_id}: {args.pipeline} version "
        f"{ref.version_name}, cron {result.cron!r}, max_concurrency=1, no catch-up, enabled"
    )
    print(
        "it stays on this version; after `churn submit` uploads new code, run `churn schedule` "
        "again to move it"
    )
    print(f"  {conn.host}/#/recurringrun/details/{result.recurring_run_id}")
    return 0


def _fail(exc: Exception) -> int:
    from churn_kfp.orchestration import kfp_client
    from churn_kfp.orchestration.cron import CronError

    print(f"error: {exc}", file=sys.stderr)
    from churn_kfp.orchestration.image import PlaceholderImageError

    usage = (kfp_client.KfpConfigError, CronError, kfp_client.ParameterError, PlaceholderImageError)
    return 2 if isinstance(exc, usage) else 1


def register(subparsers) -> None:
    """Adds the ``submit`` and ``schedule`` sub-commands."""
    submit = subparsers.add_parser(
        "submit",
        help="upload the pipelines to Kubeflow and start runs",
        description="Compile the pipelines, upload each one (or add a version named "
        "<package version>-<git sha>-<spec hash>; an existing version is reused), then "
        "start a run of that version in an experiment.",
        epilog=CONNECTION_EPILOG + "\n" + VERSION_POLICY,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    submit.add_argument(
        "--pipeline",
        default="all",
        help="pipeline to submit: churn-training, churn-retraining or all (default)",
    )
    submit.add_argument(
        "--upload-only", action="store_true", help="upload/version only, start no run"
    )
    _connection_options(submit)
    submit.set_defaults(handler=_handle_submit)

    schedule = subparsers.add_parser(
        "schedule",
        help="run the retraining pipeline on a cron schedule in Kubeflow",
        description="Create the recurring run of the retraining pipeline's current version "
        "(uploaded if needed), with max_concurrency=1, no catch-up, enabled. Re-running it "
        "replaces the recurring run of the same name (delete + recreate).",
        epilog="cron: 5 fields 'minute hour day-of-month month day-of-week' are converted to "
        "KFP's 6 fields (seconds first): '0 6 1 * *' -> '0 0 6 1 * *'; 6 fields are taken "
        "as they are.\n\n" + CONNECTION_EPILOG + "\n" + VERSION_POLICY,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    schedule.add_argument(
        "--cron", required=True, help="cron expression, e.g. '0 6 1 * *' (monthly, 06:00)"
    )
    schedule.add_argument(
        "--name",
        help=f"recurring run name (default: {RETRAINING_PIPELINE}-monthly, or "
        "<pipeline>-scheduled for another --pipeline)",
    )
    schedule.add_argument("--pipeline", default=RETRAINING_PIPELINE, help="pipeline to schedule")
    _connection_options(schedule)
    schedule.set_defaults(handler=_handle_schedule)
