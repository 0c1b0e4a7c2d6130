"""Object storage for what machines share: an ``s3://bucket/prefix`` (or a local folder) reached through fsspec.

``PETID_HOME`` stays each machine's local working root; the object store (``PETID_OBJECT_STORE``) is the shared
one: tables written by the IO manager, published model versions and evaluation reports. Credentials never pass
through petid: s3fs/botocore read them from the environment the standard way (``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN``, ``AWS_PROFILE``, instance roles). ``PETID_S3_ENDPOINT`` points
at an S3-compatible server (MinIO, Ceph, moto) instead of AWS.

Writes are atomic where the backend allows: an S3 PUT makes the whole object visible at once (never a partial
one); on a local folder a file is written beside its key and renamed. A *tree* (a model version, a report folder)
is published file by file and its manifest — every file's sha256 and size — last, so a reader either finds the
manifest and every file it names, or no tree; ``get_tree`` verifies every downloaded file against the manifest
and refuses one that differs.

Every failure the user can fix (a bad URL, a missing bucket, an unreachable endpoint, wrong credentials, an
altered object) is a one-line ``ObjectStoreError`` (a ``UserError``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import IO, Any
from urllib.parse import urlsplit

from petid.errors import UserError
from petid.paths import sha256_file

ENV_URL = "PETID_OBJECT_STORE"
ENV_ENDPOINT = "PETID_S3_ENDPOINT"
MANIFEST = "petid-manifest.json"  # a tree's commit marker, written after every file it names
SCHEMES = ("s3", "file")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")  # S3 bucket naming rules (no upper case, 3-63)
# Fail fast on an unreachable endpoint (a few seconds, not botocore's minutes), retry transient errors.
_S3_CONFIG = {"connect_timeout": 5, "read_timeout": 60, "retries": {"max_attempts": 3, "mode": "standard"}}


class ObjectStoreError(UserError):
    """The object store cannot be used as configured, or an object in it is not what it should be."""


class ObjectNotFoundError(ObjectStoreError, LookupError):
    """No object at that key."""


class IntegrityError(ObjectStoreError):
    """A downloaded object does not match the sha256 its tree's manifest records."""


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def parse_url(url: str) -> tuple[str, str]:
    """``(protocol, root path)`` of an object-store URL: ``s3://bucket[/prefix]``, ``file:///abs/dir`` or a plain
    local path. Anything else is a one-line ``ObjectStoreError``."""
    text = (url or "").strip()
    if not text:
        raise ObjectStoreError(f"empty object store URL: set {ENV_URL}=s3://BUCKET/PREFIX (or leave it unset)")
    if "://" not in text:
        return "file", str(Path(text).expanduser().resolve())
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise ObjectStoreError(f"object store URL {text!r}: unsupported scheme {scheme!r} (use s3://BUCKET/PREFIX, "
                               "or file:///DIR for a shared folder)")
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ObjectStoreError(f"object store URL {text!r}: a file:// URL names a local folder (file:///DIR)")
        return "file", str(Path(parts.path).resolve())
    if parts.query or parts.fragment or "@" in parts.netloc:
        raise ObjectStoreError(f"object store URL {text!r}: write s3://BUCKET/PREFIX (no credentials, query or "
                               "fragment in the URL; credentials come from the environment)")
    bucket = parts.netloc
    if not _BUCKET.match(bucket) or ".." in bucket:
        raise ObjectStoreError(f"object store URL {text!r}: {bucket!r} is not a valid bucket name (3-63 characters: "
                               "lower-case letters, digits, dots and hyphens)")
    prefix = "/".join(p for p in parts.path.split("/") if p)
    if any(p in (".", "..") for p in prefix.split("/")):
        raise ObjectStoreError(f"object store URL {text!r}: the prefix may not contain '.' or '..' segments")
    return "s3", f"{bucket}/{prefix}" if prefix else bucket


def check_endpoint(endpoint_url: str | None) -> str | None:
    """``endpoint_url`` stripped, if it is an ``http(s)://host[:port]`` URL; a one-line error otherwise."""
    if endpoint_url is None or not endpoint_url.strip():
        return None
    text = endpoint_url.strip()
    parts = urlsplit(text)
    try:
        parts.port  # noqa: B018 - raises on a non-numeric port
    except ValueError:
        raise ObjectStoreError(f"S3 endpoint {text!r} ({ENV_ENDPOINT}): invalid port") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path.strip("/") or "@" in parts.netloc:
        raise ObjectStoreError(f"S3 endpoint {text!r} ({ENV_ENDPOINT}): expected http(s)://HOST[:PORT]")
    return text


def _check_key(key: str) -> str:
    """A relative, normalized object key (``a/b.parquet``); anything that could leave the root is refused."""
    parts = PurePosixPath(key).parts
    if not key or key.startswith("/") or "\\" in key or any(p in ("", ".", "..") for p in parts):
        raise ObjectStoreError(f"invalid object key {key!r}: expected a relative path such as tables/x.parquet")
    return "/".join(parts)


class ObjectStore:
    """A root in an object store: ``ObjectStore("s3://bucket/prefix", endpoint_url=...)``. Keys are relative
    ``/``-separated paths below the root. The filesystem is created lazily (s3fs is imported on first use)."""

    def __init__(self, url: str, *, endpoint_url: str | None = None) -> None:
        self.protocol, self._root = parse_url(url)
        self.endpoint_url = check_endpoint(endpoint_url)
        if self.endpoint_url and self.protocol != "s3":
            raise ObjectStoreError(f"{ENV_ENDPOINT} is set but the object store {url!r} is not an s3:// URL")
        self.url = f"s3://{self._root}" if self.protocol == "s3" else self._root
        self._fs: Any = None

    @classmethod
    def from_env(cls) -> ObjectStore | None:
        """The store ``PETID_OBJECT_STORE`` (and ``PETID_S3_ENDPOINT``) configure; None when it is unset."""
        url = os.environ.get(ENV_URL, "").strip()
        return cls(url, endpoint_url=os.environ.get(ENV_ENDPOINT)) if url else None

    def __repr__(self) -> str:
        return f"ObjectStore({self.url!r}" + (f", endpoint_url={self.endpoint_url!r})" if self.endpoint_url else ")")

    @property
    def bucket(self) -> str | None:
        return self._root.split("/", 1)[0] if self.protocol == "s3" else None

    @property
    def fs(self) -> Any:
        if self._fs is None:
            import fsspec

            if self.protocol == "s3":
                # skip_instance_cache: each store reads the environment's credentials when it is created
                self._fs = fsspec.filesystem("s3", endpoint_url=self.endpoint_url, config_kwargs=_S3_CONFIG,
                                             skip_instance_cache=True)
            else:
                self._fs = fsspec.filesystem("file")
        return self._fs

    def _path(self, key: str) -> str:
        return f"{self._root}/{_check_key(key)}"

    def url_for(self, key: str) -> str:
        """The full URL of ``key`` (``s3://bucket/prefix/key``, or the local path)."""
        return f"s3://{self._path(key)}" if self.protocol == "s3" else self._path(key)

    # -- errors -------------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _errors(self, action: str, key: str | None = None) -> Iterator[None]:
        """Translate the backend's exceptions into one-line ``ObjectStoreError``s naming what to fix."""
        where = self.url_for(key) if key else self.url
        try:
            yield
        except ObjectStoreError:
            raise
        except FileNotFoundError as exc:
            if self.protocol == "s3" and "bucket" in str(exc).lower():
                raise ObjectStoreError(f"object store {self.url}: bucket {self.bucket!r} does not exist (create it, "
                                       f"or fix {ENV_URL})") from None
            raise ObjectNotFoundError(f"{where}: no such object") from None
        except PermissionError as exc:
            raise ObjectStoreError(f"{action} {where}: access denied ({_one_line(exc) or 'Forbidden'}); check the "
                                   "AWS credentials in the environment (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or "
                                   "AWS_PROFILE) and the bucket's policy") from None
        except Exception as exc:
            name = type(exc).__name__
            if type(exc).__module__.startswith(("botocore", "aiobotocore")) or isinstance(exc, OSError):
                if name == "NoCredentialsError":
                    raise ObjectStoreError(f"{action} {where}: no AWS credentials found; set AWS_ACCESS_KEY_ID and "
                                           "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) in the environment") from None
                if "Connect" in name or "Timeout" in name or isinstance(exc, ConnectionError):
                    endpoint = self.endpoint_url or "the AWS S3 endpoint"
                    raise ObjectStoreError(f"{action} {where}: cannot reach {endpoint} ({_one_line(exc)}); check "
                                           f"{ENV_ENDPOINT} and the network") from None
                raise ObjectStoreError(f"{action} {where} failed: {name}: {_one_line(exc)}") from None
            raise

    # -- objects ------------------------------------------------------------------------------------------------
    def check(self) -> None:
        """Fail with a one-line error unless the root can be listed (bucket exists, endpoint and credentials work)."""
        with self._errors("list"):
            if self.protocol == "s3":
                self.fs.ls(self.bucket, refresh=True)
            elif not Path(self._root).is_dir():
                raise ObjectStoreError(f"object store folder {self._root} does not exist")

    def exists(self, key: str) -> bool:
        with self._errors("check", key):
            return bool(self.fs.exists(self._path(key)))

    def ls(self, prefix: str = "") -> list[str]:
        """Every key below ``prefix`` (recursive, sorted), relative to the root."""
        base = self._path(prefix) if prefix else self._root
        with self._errors("list", prefix or None):
            if self.protocol == "s3":
                self.fs.invalidate_cache()
            found = self.fs.find(base)
        root = self._root.rstrip("/") + "/"
        keys = [p[len(root):] for p in found if p.startswith(root)]
        return sorted(k for k in keys if not PurePosixPath(k).name.startswith(".tmp-"))

    def put_bytes(self, key: str, data: bytes) -> str:
        with tempfile.NamedTemporaryFile(prefix=".tmp-", delete=False) as fh:
            fh.write(data)
        try:
            return self.put_file(fh.name, key)
        finally:
            Path(fh.name).unlink(missing_ok=True)

    def get_bytes(self, key: str) -> bytes:
        with self._errors("read", key):
            return self.fs.cat_file(self._path(key))

    def put_file(self, local: str | os.PathLike[str], key: str) -> str:
        """Upload a local file to ``key`` (atomic: an S3 PUT, or a rename on a folder); returns its URL. On S3 the
        file's sha256 travels with it as object metadata (``x-amz-meta-sha256``), which ``get_file`` checks."""
        target = self._path(key)
        with self._errors("write", key):
            if self.protocol == "s3":
                self.fs.put_file(str(local), target, Metadata={"sha256": sha256_file(local)})
            else:
                parent = Path(target).parent
                parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=parent, prefix=".tmp-")
                os.close(fd)
                try:
                    self.fs.put_file(str(local), tmp)
                    os.replace(tmp, target)
                except BaseException:
                    Path(tmp).unlink(missing_ok=True)
                    raise
        return self.url_for(key)

    def recorded_sha256(self, key: str) -> str | None:
        """The sha256 ``put_file`` recorded with the object (S3 metadata); None for a folder store or an object
        written by something else."""
        if self.protocol != "s3":
            with self._errors("check", key):
                if not self.fs.exists(self._path(key)):
                    raise FileNotFoundError(key)
            return None
        with self._errors("read", key):
            digest = self.fs.metadata(self._path(key), refresh=True).get("sha256")
        return digest if isinstance(digest, str) and re.fullmatch(r"[0-9a-f]{64}", digest) else None

    def get_file(self, key: str, local: str | os.PathLike[str]) -> Path:
        """Download ``key`` to ``local`` through a temporary file beside it: a reader of ``local`` never sees a
        partial download. When the object carries its sha256, a ``local`` file that already has it is kept (no
        download), and a download that does not match it is refused with an ``IntegrityError``."""
        local = Path(local)
        expected = self.recorded_sha256(key)
        if expected is not None and local.is_file() and sha256_file(local) == expected:
            return local
        local.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=local.parent, prefix=".tmp-")
        os.close(fd)
        try:
            with self._errors("read", key):
                self.fs.get_file(self._path(key), tmp)
            if expected is not None and (digest := sha256_file(tmp)) != expected:
                raise IntegrityError(f"{self.url_for(key)}: its content hashes to {digest[:16]}…, not the "
                                     f"{expected[:16]}… recorded when it was written; the object was altered or "
                                     "damaged in the store, refusing it")
            os.replace(tmp, local)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return local

    @contextlib.contextmanager
    def open(self, key: str, mode: str = "rb") -> Iterator[IO[bytes]]:
        """A file object on ``key`` (binary modes). Prefer ``put_file`` for writes: it is atomic on every backend."""
        if mode not in ("rb", "wb"):
            raise ValueError(f"mode {mode!r}: use 'rb' or 'wb'")
        with self._errors("write" if mode == "wb" else "read", key):
            if mode == "wb" and self.protocol == "file":
                Path(self._path(key)).parent.mkdir(parents=True, exist_ok=True)
            with self.fs.open(self._path(key), mode) as fh:
                yield fh

    def delete(self, key: str) -> None:
        with self._errors("delete", key):
            self.fs.rm_file(self._path(key))

    # -- trees (a folder published with a manifest) --------------------------------------------------------------
    def read_manifest(self, prefix: str) -> dict[str, Any]:
        """The manifest of the tree at ``prefix``: ``{"files": {relative path: {"sha256", "size"}}}``."""
        key = f"{_check_key(prefix)}/{MANIFEST}"
        try:
            raw = self.get_bytes(key)
        except ObjectNotFoundError:
            raise ObjectNotFoundError(f"{self.url_for(prefix)}: nothing published there (no {MANIFEST})") from None
        try:
            manifest = json.loads(raw)
            files = manifest["files"]
            ok = isinstance(files, dict) and all(
                isinstance(v, dict) and isinstance(v.get("sha256"), str) and isinstance(v.get("size"), int)
                for v in files.values())
        except (ValueError, KeyError, TypeError):
            ok = False
        if not ok:
            raise IntegrityError(f"{self.url_for(key)} is not a valid petid manifest; re-publish the tree")
        for name in files:
            _check_key(name)  # a manifest can never direct a download outside its folder
        return manifest

    def put_tree(self, local_dir: str | os.PathLike[str], prefix: str, *, overwrite: bool = False) -> dict[str, Any]:
        """Publish every file under ``local_dir`` to ``prefix/…``, then the manifest (sha256 and size of each).

        An identical tree already there is left alone. A different one is refused unless ``overwrite`` (model
        versions are immutable; a report folder may be re-published)."""
        local_dir = Path(local_dir)
        if not local_dir.is_dir():
            raise ObjectStoreError(f"cannot publish {local_dir}: not a folder")
        files = {p.relative_to(local_dir).as_posix(): p for p in sorted(local_dir.rglob("*"))
                 if p.is_file() and not p.name.startswith(".tmp-")}
        manifest = {"format": 1, "files": {name: {"sha256": sha256_file(p), "size": p.stat().st_size}
                                           for name, p in files.items()}}
        try:
            existing = self.read_manifest(prefix)
        except ObjectNotFoundError:
            existing = None
        if existing is not None and existing["files"] == manifest["files"]:
            return existing
        if existing is not None and not overwrite:
            raise ObjectStoreError(f"{self.url_for(prefix)} is already published with different content; it is "
                                   "never overwritten")
        for name, path in files.items():
            self.put_file(path, f"{prefix}/{name}")
        self.put_bytes(f"{prefix}/{MANIFEST}", json.dumps(manifest, indent=2, sort_keys=True).encode())
        return manifest

    def get_tree(self, prefix: str, local_dir: str | os.PathLike[str]) -> dict[str, Any]:
        """Download the tree at ``prefix`` into ``local_dir``, verifying each file's sha256 and size against the
        manifest; a file that differs is deleted and refused with an ``IntegrityError``."""
        manifest = self.read_manifest(prefix)
        local_dir = Path(local_dir)
        for name, entry in sorted(manifest["files"].items()):
            key = f"{prefix}/{name}"
            path = self.get_file(key, local_dir / name)
            size, digest = path.stat().st_size, sha256_file(path)
            if digest != entry["sha256"] or size != entry["size"]:
                path.unlink(missing_ok=True)
                raise IntegrityError(f"{self.url_for(key)}: sha256 {digest[:16]}… ({size} bytes) does not match the "
                                     f"manifest's {entry['sha256'][:16]}… ({entry['size']} bytes); the object was "
                                     "altered or damaged in the store, refusing it (publish it again)")
        return manifest
