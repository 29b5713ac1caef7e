"""The `s3` tier: a bucket (and optional key prefix) on S3 or an S3-compatible server through s3fs and botocore
(shared code in storage.remote).

Spec keys of [tiers.NAME] (relative file paths are taken from the repository root; unknown keys are refused):
  s3      bucket (required); endpoint (AWS when absent); prefix = ""; region; timeout = 10 (connect);
          access_key + secret_key_file (both or neither; neither = botocore's usual chain: AWS_* variables…)

Publishing a tree: S3 has no rename, so files go to their final keys with the tree's bagit.txt last (a tree
without bagit.txt is not a bag, and `aip_paths` does not count it), and a failure deletes every key written.
Opening the tier never connects; the first operation connects once and the connection is reused. An absent
bucket is `TierUnreachable`, like an unmounted disk. s3fs and botocore are imported on first connection.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..digest import CHUNK
from ..errors import ConfigError
from .base import AIPS_PREFIX
from .remote import BAG_DECLARATION, FsspecTier, require_setting, spec_file

S3_BLOCK = 16 * CHUNK          # multipart part / read-ahead size: 16 MiB parts allow files up to 160 GB


class S3Tier(FsspecTier):
    """A bucket (and optional key prefix) on S3 or an S3-compatible server (s3fs). No rename: not atomic."""

    kind = "s3"
    atomic_publish = False
    spec_keys = frozenset({"kind", "endpoint", "bucket", "prefix", "region", "access_key", "secret_key_file",
                           "timeout"})

    def __init__(self, name: str, *, endpoint: str | None, bucket: str, prefix: str, region: str | None,
                 access_key: str | None, secret_file: Path | None, timeout: float):
        super().__init__(name, f"{bucket}/{prefix.strip('/')}" if prefix.strip("/") else bucket)
        self.endpoint, self.bucket, self.region = endpoint, bucket, region
        self.access_key, self.secret_file, self.timeout = access_key, secret_file, timeout

    @classmethod
    def from_spec(cls, name: str, spec: dict[str, Any], root: Path) -> "S3Tier":
        access, secret = spec.get("access_key"), spec.get("secret_key_file")
        if bool(access) != bool(secret):
            raise ConfigError(f"Tier '{name}' sets only one of access_key and secret_key_file.",
                              hint=f"Set both in [tiers.{name}], or neither to use the AWS_* environment variables.")
        try:
            timeout = float(spec.get("timeout", 10))
        except (TypeError, ValueError):
            raise ConfigError(f"Tier '{name}': timeout must be a number of seconds.",
                              hint=f"Fix [tiers.{name}] in preserve.toml.") from None
        return cls(name, endpoint=spec.get("endpoint") or None, bucket=require_setting(name, spec, "bucket"),
                   prefix=str(spec.get("prefix") or ""), region=spec.get("region") or None,
                   access_key=str(access) if access else None,
                   secret_file=spec_file(root, str(secret)) if secret else None, timeout=timeout)

    @property
    def location(self) -> str:
        return f"s3://{self.root}"

    @property
    def hint(self) -> str:
        creds = (f"access key {self.access_key} with the secret in {self.secret_file}" if self.access_key
                 else "the AWS_* credentials in the environment")
        return (f"Check the endpoint {self.endpoint or '(AWS)'}, that bucket '{self.bucket}' exists, and {creds}.")

    @property
    def lib_errors(self) -> tuple[type[BaseException], ...]:   # type: ignore[override]
        from botocore.exceptions import BotoCoreError, ClientError

        return (BotoCoreError, ClientError)

    def _connect(self) -> Any:
        import s3fs

        creds = {}
        if self.access_key and self.secret_file:
            creds = {"key": self.access_key, "secret": self.secret_file.read_text(encoding="utf-8").strip()}
        fs = s3fs.S3FileSystem(
            skip_instance_cache=True, use_listings_cache=False, **creds,
            client_kwargs={"endpoint_url": self.endpoint, "region_name": self.region},
            config_kwargs={"connect_timeout": self.timeout, "retries": {"total_max_attempts": 2}})
        fs.retries = 3   # s3fs's own retry loop (a class attribute, 5 by default) on top of botocore's
        return fs

    def _unreachable(self, e: BaseException) -> bool:
        from botocore import exceptions as bx

        return isinstance(e, (bx.ConnectionError, bx.HTTPClientError, bx.NoCredentialsError,
                              bx.PartialCredentialsError, bx.CredentialRetrievalError,
                              PermissionError, ConnectionError, TimeoutError))

    def _check_base(self, fs: Any) -> None:
        try:
            fs.call_s3("head_bucket", Bucket=self.bucket)
        except FileNotFoundError:
            raise self._down(f"bucket '{self.bucket}' does not exist") from None
        except PermissionError as e:
            raise self._down(f"access to bucket '{self.bucket}' refused ({e})") from e
        except (OSError, *self.lib_errors) as e:
            raise self._down(str(e) or type(e).__name__) from e

    def _makedirs(self, fs: Any, path: str, made: set[str]) -> None:
        """S3 has no folders."""

    def _open_read(self, fs: Any, path: str, size: int) -> Any:
        return fs.open(path, "rb", block_size=S3_BLOCK, cache_type="readahead")

    def _open_write(self, fs: Any, path: str) -> Any:
        return fs.open(path, "wb", block_size=S3_BLOCK)

    def _remove(self, fs: Any, paths: list[str]) -> None:
        """Bulk delete; each tree loses its bagit.txt first, so a half-deleted tree is never counted as held."""
        bags = [f"{p}/{BAG_DECLARATION}" for p in paths if _s3_isdir(fs, p)]
        for batch in (bags, paths):
            if batch:
                try:
                    fs.rm(batch, recursive=batch is paths)
                except FileNotFoundError:
                    pass

    def aip_paths(self) -> set[str]:
        """One listing; a version counts only when its bagit.txt is there (files reach their final keys one by
        one and bagit.txt is written last, so a tree without it is an interrupted write)."""
        files = {info.path for info in self.list(AIPS_PREFIX)}
        found = set()
        for p in files:
            parts = p.split("/")
            if len(parts) >= 6 and parts[4].startswith("v"):
                found.add("/".join(parts[:5]))
        return {p for p in found if f"{p}/{BAG_DECLARATION}" in files}


def _s3_isdir(fs: Any, path: str) -> bool:
    try:
        return fs.info(path)["type"] == "directory"
    except FileNotFoundError:
        return False
