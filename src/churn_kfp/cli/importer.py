"""``churn import``: bring a user's own order export into the landing zone."""

from __future__ import annotations

import argparse
import json
import sys

EPILOG = """\
examples:
  # the CDNOW purchase log shipped beside this repository (see examples/cdnow/)
  churn import examples/cdnow/mapping.yaml ../shared/data/cdnow/CDNOW_master.txt

  # check a shop export without writing anything, as JSON
  churn import my-shop.yaml orders-2025.csv --dry-run --json

  # a corrected export for months already imported from another file
  churn import my-shop.yaml orders-2025-fixed.csv --replace

  # then train on what was imported (no synthetic data)
  churn run --no-generate --horizon-days 90

a minimal mapping (every key: docs/data-contract.md):
  columns:
    customer_id: CustomerID
    timestamp: InvoiceDate
    amount: Total
  timestamp_format: "%d/%m/%Y %H:%M"

exit codes: 0 imported (or already imported: nothing added), 2 refused (bad mapping or
export, overlap without --replace; nothing written), 1 a write failed (nothing imported)
or the landing zone is busy (another import or run holds its lock), 130 interrupted
(Ctrl-C or SIGTERM: nothing imported). Even a killed import is all or nothing.
"""


def _handle(args: argparse.Namespace) -> int:
    from churn_kfp.core.config import Settings
    from churn_kfp.data.importer.errors import ImportFailed, ImportRefused, MappingError
    from churn_kfp.data.importer.importing import import_file
    from churn_kfp.data.importer.mapping import load_mapping as load
    from churn_kfp.data.storage import LandingZoneError, open_landing_zone

    landing_zone = args.landing_zone or Settings.from_env().landing_zone
    try:
        mapping = load(args.mapping)
        zone = open_landing_zone(landing_zone)
        report = import_file(
            args.file,
            mapping,
            zone,
            replace=args.replace,
            progress=not (args.quiet or args.json),
            dry_run=args.dry_run,
            fresh=args.fresh,
        )
    except (MappingError, ImportRefused, FileNotFoundError) as exc:
        return _refused(args, exc)
    except (ImportFailed, LandingZoneError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        if args.json:
            print(json.dumps({"status": "failed", "error": str(exc)}, indent=2))
        return 1
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    elif not args.quiet:
        print(report.format())
        if report.status == "imported":
            print(f"next: churn run --no-generate --landing-zone {zone.uri}")
    return 0


def _refused(args: argparse.Namespace, exc: Exception) -> int:
    from churn_kfp.data.importer.errors import ImportRefused

    message = str(exc) if not isinstance(exc, FileNotFoundError) else f"{exc}"
    print(f"error: {message}", file=sys.stderr)
    print("nothing was written to the landing zone", file=sys.stderr)
    if args.json:
        data = (
            exc.to_dict()
            if isinstance(exc, ImportRefused)
            else {"status": "refused", "error": message}
        )
        print(json.dumps(data, indent=2))
    return 2


def register(subparsers) -> None:
    """Adds the ``import`` sub-command."""
    parser = subparsers.add_parser(
        "import",
        help="import your own order export (CSV, whitespace columns, Parquet)",
        description="Import a shop or warehouse export into the landing zone through a YAML\n"
        "mapping (which column is what, date format, returns, id normalisation). Prints\n"
        "what was read, kept and dropped (by reason), the date range and customers.\n"
        "All or nothing: a refused import writes nothing; re-importing the same file adds\n"
        "nothing; months that already hold data from another file need --replace.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("mapping", help="the YAML mapping (see examples/cdnow/mapping.yaml)")
    parser.add_argument("file", help="the export to import")
    parser.add_argument(
        "--landing-zone",
        metavar="PATH|s3://BUCKET/PREFIX",
        help="where to write (default: $CHURN_LANDING_ZONE, else $CHURN_HOME/landing)",
    )
    parser.add_argument(
        "--replace",
        action="store_true",
        help="replace existing data of the months this file covers (refused otherwise)",
    )
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="start from an empty landing zone: remove the data files of every table and "
        "every manifest once the export has passed its checks; other files (a README, "
        "notes) stay (examples, experiments)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="read, check and report; write nothing"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("-q", "--quiet", action="store_true", help="no report, no progress bar")
    parser.set_defaults(handler=_handle)
