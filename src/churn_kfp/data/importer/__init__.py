"""Import a user's own export into the landing zone: ``churn import``.

A shop's or warehouse's export rarely looks like the data contract. A small YAML
*mapping* (``mapping.load_mapping``, reference in ``docs/data-contract.md``) says which
column is what, how dates are written, whether the amount is given or is quantity × unit
price, how returns and cancellations are marked and how customer ids are normalised.
``importing.import_file`` then

1. reads the export: CSV with any delimiter (sniffed when not given), whitespace-aligned
   columns, or Parquet (``reading``);
2. maps and normalises the columns, vectorised with Arrow compute kernels (``values``);
3. drops unusable rows and counts them by reason (missing customer id, missing or
   unparseable time stamp, non-numeric amount, cancellations and returns, duplicate
   lines, malformed lines), keeping one example of each (``rules``, ``duplicates``);
4. validates the result with the contract's pandera schema
   (:func:`churn_kfp.data.contract.schema`), the same schema ingestion uses
   (``contract_check``);
5. writes date partitions (``raw/sales/year=YYYY/month=MM/[day=DD/]``) as Parquet (or
   CSV) and an import manifest ``imports/<sha256 of the file>.json`` (``writing``), and
   reports what it did (``report``).

It is all or nothing. *Unrecoverable* problems raise ``errors.ImportRefused`` before
anything is written, naming the file, the column and an example value: an empty file, a
wrong encoding, a mapped column that the file does not have (which is also how a wrong
delimiter shows: the file seems to have a single column), time stamps unusable in most
rows (> ``rules.MAX_UNUSABLE_SHARE``), amounts that are mostly not numbers, no row left
after the drops, and partitions that would overwrite another import's data without
``replace=True``. The writes are one staged change that the import's manifest commits
(:mod:`churn_kfp.data.staging`): a write that fails midway (``errors.ImportFailed``), or
a process killed midway, leaves the landing zone as it was.

Re-importing the same file (same bytes, same mapping) adds nothing and says so.

Usage::

    from churn_kfp.data.importer.importing import import_file
    from churn_kfp.data.importer.mapping import load_mapping

    report = import_file("orders.csv", load_mapping("shop.yaml"), "/data/landing")
    print(report.format())  # or report.to_dict()
"""

__all__ = [
    "contract_check",
    "duplicates",
    "errors",
    "importing",
    "mapping",
    "reading",
    "report",
    "rules",
    "values",
    "writing",
]
