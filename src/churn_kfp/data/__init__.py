"""The data stage: from a shop's raw data to clean, contract-conforming tables.

It owns:

- the data contract, written once (``contract``: tables, columns, pandera schemas, the
  tokens that mean "missing");
- the landing zone where raw data arrives, date-partitioned, on a local disk or in S3
  (``landing``: the protocol and its errors; ``storage``: the local backend, the layout
  and ``open_landing_zone``; ``s3storage``: the S3 backend), its all-or-nothing changes
  of many files, even when a process is killed (``staging``), and its one-writer lock
  (``locking``);
- the import of a user's own export into the landing zone, ``churn import``
  (the ``importer`` package);
- ingestion: reading, validating and cleaning the landing zone (``validation``, its
  parsers of raw column values in ``parsing``, its report in ``ingest_report``); both
  the import and ingestion find duplicate rows through ``rowhash``;
- the synthetic customer base for demos, tests and simulations (``datagen``, its
  feedback texts in ``datagen_text``);
- the sentiment of customer feedback (``sentiment``).
"""

__all__ = [
    "contract",
    "datagen",
    "datagen_text",
    "importer",
    "ingest_report",
    "landing",
    "locking",
    "parsing",
    "rowhash",
    "s3storage",
    "sentiment",
    "staging",
    "storage",
    "validation",
]
