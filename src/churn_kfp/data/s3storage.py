"""The S3/MinIO landing zone: the cluster twin of :class:`~churn_kfp.data.storage.LocalLandingZone`.

``s3://bucket[/prefix]`` URIs open an :class:`S3LandingZone` that talks to MinIO, SeaweedFS,
AWS S3 or any S3 API server through the ``minio`` client. Keys and the date-partitioned
layout are exactly those of the local backend (:func:`churn_kfp.data.storage.partition_key`);
``discover_partitions`` and the ledger work through the same :class:`LandingZone` methods.

Where the connection comes from: the environment only, never a function argument that a
pipeline would bake into its compiled YAML. On a cluster the variables are injected from
the ``churn-s3-credentials`` Secret and the ``churn-config`` ConfigMap
(:func:`churn_kfp.orchestration.cluster_env.use_cluster_config`):

``S3_ENDPOINT_URL`` (or ``MLFLOW_S3_ENDPOINT_URL``)
    ``http://minio:9000``; the scheme decides TLS. Unset means AWS S3.
``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` (``AWS_SESSION_TOKEN`` optional)
    The credentials.
``AWS_REGION`` (or ``AWS_DEFAULT_REGION``)
    Optional; ``us-east-1`` for a custom endpoint, looked up per bucket on AWS.

The ledger's compare-and-swap uses S3 conditional writes: ``If-None-Match: *`` (create
only) and ``If-Match: <etag>`` (replace only that version), answered with ``412
PreconditionFailed`` when another writer got there first. MinIO, SeaweedFS and AWS S3
(since 2024) honour both. ``minio`` 7.2's public ``put_object`` turns unknown headers into
``X-Amz-Meta-*`` metadata, so the conditional PUT goes through the client's lower-level
``_put_object`` (signed like any other call; the package is pinned to 7.2.20, and the
storage tests run it against a real S3 server).
"""

from __future__ import annotations

import contextlib
import io
import mimetypes
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from churn_kfp.data.landing import LandingZoneError, PreconditionFailed

if TYPE_CHECKING:
    from minio import Minio

ENDPOINT_ENV_VARS = ("S3_ENDPOINT_URL", "MLFLOW_S3_ENDPOINT_URL")
"""Environment variables naming the S3 endpoint, first set wins."""

AWS_ENDPOINT_URL = "https://s3.amazonaws.com"
DEFAULT_REGION = "us-east-1"
CREDENTIALS_HINT = (
    "check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (on a cluster: the churn-s3-credentials "
    "Secret, which must match a MinIO user)"
)
_CREDENTIAL_CODES = frozenset(
    {
        "SignatureDoesNotMatch",
        "InvalidAccessKeyId",
        "AccessDenied",
        "InvalidToken",
        "ExpiredToken",
        "InvalidSecurity",
    }
)
_CONFLICT_CODES = frozenset({"PreconditionFailed", "ConditionalRequestConflict"})
_MISSING_KEY_CODES = frozenset({"NoSuchKey", "NoSuchObject", "ResourceNotFound"})


@dataclass(frozen=True)
class S3Settings:
    """How to reach the S3 server; built from the environment by :meth:`from_env`.

    Attributes:
        endpoint_url: ``scheme://host[:port]`` as configured (shown in error messages).
        access_key: Access key id.
        secret_key: Secret access key (never shown in ``repr``).
        session_token: Optional session token (never shown in ``repr``).
        region: Region, or ``None`` to let the client look it up per bucket.
    """

    endpoint_url: str
    access_key: str
    secret_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)
    region: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> S3Settings:
        """Reads the endpoint, credentials and region from environment variables.

        Raises:
            LandingZoneError: When the credentials are missing or the endpoint is malformed.
        """
        env = os.environ if environ is None else environ
        endpoint_url = next((env[n].strip() for n in ENDPOINT_ENV_VARS if env.get(n)), "")
        custom_endpoint = bool(endpoint_url)
        endpoint_url = endpoint_url or AWS_ENDPOINT_URL
        access_key = env.get("AWS_ACCESS_KEY_ID", "").strip()
        secret_key = env.get("AWS_SECRET_ACCESS_KEY", "").strip()
        if not access_key or not secret_key:
            raise LandingZoneError(
                "S3 credentials are missing: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                "(on a cluster they come from the churn-s3-credentials Secret through "
                "churn_kfp.orchestration.cluster_env.use_cluster_config)"
            )
        region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None
        if region is None and custom_endpoint:
            region = DEFAULT_REGION
        settings = cls(
            endpoint_url=endpoint_url.rstrip("/"),
            access_key=access_key,
            secret_key=secret_key,
            session_token=env.get("AWS_SESSION_TOKEN") or None,
            region=region,
        )
        _ = settings.host  # validates the URL now, with a clear message
        return settings

    @property
    def secure(self) -> bool:
        """Whether to use TLS (the endpoint's scheme is ``https``)."""
        return urlsplit(self.endpoint_url).scheme == "https"

    @property
    def host(self) -> str:
        """``host[:port]`` of the endpoint, as the ``minio`` client wants it.

        Raises:
            LandingZoneError: When the URL has no http(s) scheme, no host, or a path.
        """
        parts = urlsplit(self.endpoint_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise LandingZoneError(
                f"S3 endpoint {self.endpoint_url!r} must look like http://host:port or "
                f"https://host (set {ENDPOINT_ENV_VARS[0]})"
            )
        if parts.path not in ("", "/") or parts.query:
            raise LandingZoneError(
                f"S3 endpoint {self.endpoint_url!r} must not carry a path; put the bucket and "
                "prefix in the s3:// URI instead"
            )
        return parts.netloc


def arrow_filesystem(settings: S3Settings | None = None) -> Any:
    """A ``pyarrow.fs.S3FileSystem`` on the same server and credentials.

    Readers that stream Parquet (DuckDB scanning an Arrow dataset) use it instead of
    downloading whole objects; it is built into pyarrow, so nothing is fetched at run time.

    Args:
        settings: Endpoint and credentials; default :meth:`S3Settings.from_env`.
    """
    from pyarrow import fs

    settings = settings or S3Settings.from_env()
    custom = settings.endpoint_url != AWS_ENDPOINT_URL
    return fs.S3FileSystem(
        access_key=settings.access_key,
        secret_key=settings.secret_key,
        session_token=settings.session_token,
        region=settings.region or "",
        endpoint_override=settings.host if custom else None,
        scheme="https" if settings.secure else "http",
    )


def s3_parquet_dataset(uris: list[str], settings: S3Settings | None = None) -> Any:
    """An Arrow dataset of ``s3://`` Parquet: one object or prefix, or a list of objects.

    Args:
        uris: ``s3://bucket/key`` URIs.
        settings: Endpoint and credentials; default :meth:`S3Settings.from_env`.

    Raises:
        LandingZoneError: A URI is not an ``s3://`` URI with a bucket.
    """
    import pyarrow.dataset as ds

    for uri in uris:
        parse_s3_uri(uri)
    keys = [uri.removeprefix("s3://") for uri in uris]
    source = keys[0] if len(keys) == 1 else keys
    return ds.dataset(source, filesystem=arrow_filesystem(settings), format="parquet")


def remote_parquet(paths: list[str]) -> Any | None:
    """The Arrow dataset of Parquet ``paths`` on S3, or ``None`` when every path is local.

    The one place the feature engines decide where their Parquet is.

    Raises:
        ValueError: A scheme other than ``s3://``, or local paths mixed with S3 URIs.
    """
    remote = [p for p in paths if "://" in p]
    if not remote:
        return None
    if all(p.startswith("s3://") for p in paths):
        return s3_parquet_dataset(paths)
    raise ValueError(
        f"Parquet is read from local paths or s3:// URIs; cannot read {remote[0]} (mixing "
        "local and s3:// paths is not supported either)"
    )


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """Splits ``s3://bucket[/prefix]`` into the bucket and a prefix ending in ``/`` (or ``""``).

    Raises:
        LandingZoneError: When the URI is not an ``s3://`` URI with a bucket name.
    """
    parts = urlsplit(uri)
    if parts.scheme != "s3" or not parts.netloc:
        raise LandingZoneError(f"not an S3 URI (expected s3://bucket[/prefix]): {uri!r}")
    prefix = parts.path.strip("/")
    return parts.netloc, f"{prefix}/" if prefix else ""


class S3LandingZone:
    """A landing zone in an S3 bucket (optionally under a prefix).

    Args:
        bucket: Bucket name.
        prefix: Key prefix all keys live under (``""`` for the bucket root).
        settings: Endpoint and credentials; default :meth:`S3Settings.from_env`.
        connect_timeout: Seconds to wait for a TCP connection.
        read_timeout: Seconds to wait for a response.
        retries: How often a failed connection or a 5xx answer is retried (with backoff).
        client: A ready ``minio.Minio`` client (tests); overrides the three above.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        settings: S3Settings | None = None,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        retries: int = 3,
        client: Minio | None = None,
    ):
        _check_bucket_name(bucket)
        self.settings = settings or S3Settings.from_env()
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.uri = f"s3://{bucket}/{self.prefix}".rstrip("/")
        self._client = client or _make_client(self.settings, connect_timeout, read_timeout, retries)

    def __repr__(self) -> str:
        return f"S3LandingZone({self.uri!r}, endpoint={self.settings.endpoint_url!r})"

    # ----------------------------------------------------------------- LandingZone protocol

    def list_keys(self, prefix: str = "") -> list[str]:
        """Lists object keys (relative to the zone's prefix) under a prefix, sorted."""
        full = self.prefix + prefix.lstrip("/")
        with self._errors("listing", prefix):
            objects = list(self._client.list_objects(self.bucket, prefix=full, recursive=True))
        keys = [
            obj.object_name[len(self.prefix) :]
            for obj in objects
            if not obj.is_dir and not obj.object_name.endswith("/")
        ]
        return sorted(keys)

    def read_bytes(self, key: str) -> bytes:
        """Reads one object.

        Raises:
            FileNotFoundError: The object does not exist.
        """
        found = self.read_versioned(key)
        if found is None:
            raise FileNotFoundError(f"{key} not found in landing zone {self.uri}")
        return found[0]

    def write_bytes(self, key: str, data: bytes) -> None:
        """Writes one object; S3 PUTs are atomic (readers see the old or the new object)."""
        name = self._object(key)
        with self._errors("writing", key):
            self._client.put_object(
                self.bucket, name, io.BytesIO(data), len(data), content_type=_content_type(key)
            )

    def exists(self, key: str) -> bool:
        """Whether an object exists."""
        name = self._object(key)
        try:
            with self._errors("checking", key):
                self._client.stat_object(self.bucket, name)
        except FileNotFoundError:
            return False
        return True

    def delete(self, key: str) -> None:
        """Deletes one object (no error when absent, as S3 itself)."""
        name = self._object(key)
        with self._errors("deleting", key):
            self._client.remove_object(self.bucket, name)

    def move(self, source: str, target: str) -> None:
        """Copies the object server-side, then deletes the source; no error when it is gone."""
        from minio.commonconfig import CopySource

        name = self._object(target)
        try:
            with self._errors("copying", source):
                self._client.copy_object(
                    self.bucket, name, CopySource(self.bucket, self._object(source))
                )
        except FileNotFoundError:
            return
        self.delete(source)

    def read_versioned(self, key: str) -> tuple[bytes, str] | None:
        """Reads an object and its ETag in one GET; ``None`` when absent."""
        name = self._object(key)
        try:
            with self._errors("reading", key):
                response = self._client.get_object(self.bucket, name)
                try:
                    data = response.read()
                    etag = (response.headers.get("ETag") or "").strip('"')
                finally:
                    response.close()
                    response.release_conn()
        except FileNotFoundError:
            return None
        return data, etag

    def write_conditional(self, key: str, data: bytes, if_match: str | None) -> str:
        """Writes only if the object is still at ETag ``if_match`` (``None``: must not exist).

        Returns:
            The new ETag.

        Raises:
            PreconditionFailed: Someone else wrote (or created) the object in between.
        """
        name = self._object(key)
        headers = {"Content-Type": _content_type(key)}
        if if_match is None:
            headers["If-None-Match"] = "*"
        else:
            headers["If-Match"] = '"' + if_match.strip('"') + '"'
        put = getattr(self._client, "_put_object", None)
        if put is None:  # pragma: no cover - guards a minio upgrade
            raise LandingZoneError(
                "this minio client has no _put_object; conditional writes need minio==7.2.20"
            )
        try:
            with self._errors("conditionally writing", key):
                result = put(self.bucket, name, data, headers=headers)
        except FileNotFoundError as exc:  # AWS answers If-Match on a missing key with 404
            raise PreconditionFailed(f"{key} vanished since it was read (ETag {if_match})") from exc
        return result.etag

    # ----------------------------------------------------------------- bucket management

    def check(self) -> None:
        """Verifies the endpoint answers, the credentials work and the bucket exists.

        Raises:
            LandingZoneError: With a message naming the problem and what to fix.
        """
        with self._errors("opening", ""):
            # A GET (unlike HEAD) returns the precise S3 error code for bad credentials.
            next(iter(self._client.list_objects(self.bucket, prefix=self.prefix or None)), None)

    def bucket_exists(self) -> bool:
        """Whether the bucket exists (bad credentials or endpoint still raise)."""
        try:
            self.check()
        except _MissingBucket:
            return False
        return True

    def ensure_bucket(self) -> bool:
        """Creates the bucket when it does not exist.

        Returns:
            True when the bucket was created by this call.
        """
        if self.bucket_exists():
            return False
        try:
            with self._errors("creating the bucket", ""):
                self._client.make_bucket(self.bucket, location=self.settings.region)
        except LandingZoneError as exc:
            cause = exc.__cause__
            if getattr(cause, "code", None) in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                return False
            raise
        return True

    # ----------------------------------------------------------------- helpers

    def _object(self, key: str) -> str:
        parts = key.split("/")
        if not key or key.startswith("/") or ".." in parts or "" in parts[:-1]:
            raise LandingZoneError(f"invalid landing-zone key {key!r}")
        return self.prefix + key

    @contextlib.contextmanager
    def _errors(self, action: str, key: str) -> Iterator[None]:
        """Maps client exceptions to LandingZoneError, FileNotFoundError or PreconditionFailed."""
        import urllib3
        from minio.error import InvalidResponseError, S3Error, ServerError

        where = f"s3://{self.bucket}/{self.prefix}{key}"
        endpoint = self.settings.endpoint_url
        try:
            yield
        except S3Error as exc:
            code = exc.code or ""
            if code in _CONFLICT_CODES:
                raise PreconditionFailed(
                    f"{key} changed since it was read ({code} while {action} {where})"
                ) from exc
            if code in _MISSING_KEY_CODES and key:
                raise FileNotFoundError(f"{key} not found in landing zone {self.uri}") from exc
            if code == "NoSuchBucket":
                raise _MissingBucket(
                    f"bucket {self.bucket!r} does not exist at {endpoint}: create it (the "
                    "manifests' create-buckets Job does; or S3LandingZone.ensure_bucket())"
                ) from exc
            if code in _CREDENTIAL_CODES:
                raise LandingZoneError(
                    f"S3 at {endpoint} refused the credentials ({code}: {exc.message}) while "
                    f"{action} {where}: {CREDENTIALS_HINT}"
                ) from exc
            raise LandingZoneError(
                f"S3 error {code} while {action} {where} at {endpoint}: {exc.message}"
            ) from exc
        except (InvalidResponseError, ServerError) as exc:
            raise LandingZoneError(
                f"{endpoint} did not answer like an S3 server while {action} {where}: {exc}; "
                f"check {ENDPOINT_ENV_VARS[0]}"
            ) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            if isinstance(exc, FileNotFoundError):
                raise
            reason = getattr(exc, "reason", None) or exc
            raise LandingZoneError(
                f"cannot reach the S3 endpoint {endpoint} while {action} {where} ({reason}); "
                f"check {ENDPOINT_ENV_VARS[0]} and that the server is running"
            ) from exc


class _MissingBucket(LandingZoneError):
    """The bucket does not exist (a LandingZoneError; told apart by ensure_bucket)."""


def open_s3_landing_zone(
    uri: str, environ: Mapping[str, str] | None = None, *, check: bool = True
) -> S3LandingZone:
    """Opens ``s3://bucket[/prefix]`` with the endpoint and credentials from the environment.

    Args:
        uri: The landing-zone URI.
        environ: Environment to read (default ``os.environ``).
        check: Verify now that the endpoint, credentials and bucket are right.

    Returns:
        The zone.

    Raises:
        LandingZoneError: Malformed URI, missing credentials, unreachable endpoint, refused
            credentials or missing bucket.
    """
    bucket, prefix = parse_s3_uri(uri)
    zone = S3LandingZone(bucket, prefix, settings=S3Settings.from_env(environ))
    if check:
        zone.check()
    return zone


def _make_client(settings: S3Settings, connect_timeout: float, read_timeout: float, retries: int):
    import certifi
    import urllib3
    from minio import Minio

    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
        maxsize=10,
        cert_reqs="CERT_REQUIRED",
        ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
        retries=urllib3.Retry(
            total=retries,
            backoff_factor=0.2,
            status_forcelist=[500, 502, 503, 504],
            raise_on_status=False,
        ),
    )
    return Minio(
        settings.host,
        access_key=settings.access_key,
        secret_key=settings.secret_key,
        session_token=settings.session_token,
        secure=settings.secure,
        region=settings.region,
        http_client=http,
    )


def _check_bucket_name(bucket: str) -> None:
    from minio.helpers import check_bucket_name

    try:
        check_bucket_name(bucket)
    except ValueError as exc:
        raise LandingZoneError(f"invalid S3 bucket name {bucket!r}: {exc}") from exc


def _content_type(key: str) -> str:
    if key.endswith(".parquet"):
        return "application/vnd.apache.parquet"
    return mimetypes.guess_type(key)[0] or "application/octet-stream"
