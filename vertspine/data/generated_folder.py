"""A folder of generated data, published atomically and reused while its manifest matches.

    ensure_generated_folder("datasets/x/train", {"version": 3, ...}, write_into)

``write_into(staging)`` fills a temporary folder beside the target; the manifest is written
into it last and the folder is renamed onto the target, so readers never see a partial
folder and concurrent callers are safe: when another process published the same manifest
first, this one drops its copy. A stale folder (other manifest) is moved aside and deleted;
a non-empty folder without a manifest is never touched.
"""
import errno
import json
import os
import shutil
import tempfile
import uuid
from typing import Any, Callable, Dict, Optional

from vertspine.utils.file_io import write_json

__all__ = ["MANIFEST_NAME", "ensure_generated_folder", "publish_folder", "read_manifest"]

MANIFEST_NAME = "manifest.json"


def read_manifest(folder: str, manifest_name: str = MANIFEST_NAME) -> Optional[Dict[str, Any]]:
    """The manifest stored in ``folder``, or None when there is none (or it is unreadable)."""
    try:
        with open(os.path.join(folder, manifest_name), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def ensure_generated_folder(folder: str, manifest: Dict[str, Any],
                            write_into: Callable[[str], None], *,
                            manifest_name: str = MANIFEST_NAME,
                            what: str = "generated dataset") -> bool:
    """Make ``folder`` hold what ``write_into`` writes for ``manifest`` (see the module doc).

    Args:
        folder: the target folder.
        manifest: JSON-ready dict identifying the content (compared as it reads back); written
            as compact JSON to ``manifest_name`` in the folder.
        write_into: called with an empty staging folder to fill.
        manifest_name: the manifest's file name.
        what: what the folder holds, for the error message.
    Returns:
        whether this call generated the content (False: it was already there).
    Raises:
        FileExistsError: ``folder`` is non-empty and holds no manifest.
    """
    manifest = json.loads(json.dumps(manifest))
    if read_manifest(folder, manifest_name) == manifest:
        return False
    parent, name = os.path.split(os.path.abspath(folder))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=parent)
    try:
        os.chmod(staging, 0o755)  # mkdtemp makes it private; the data is not
        write_into(staging)
        write_json(os.path.join(staging, manifest_name), manifest, indent=None,
                   separators=(",", ":"))
        publish_folder(staging, folder, manifest, manifest_name=manifest_name, what=what)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return True


def publish_folder(staging: str, folder: str, manifest: Dict[str, Any], *,
                   manifest_name: str = MANIFEST_NAME, what: str = "generated dataset") -> None:
    """Rename ``staging`` (holding its manifest) onto ``folder``, replacing a stale folder;
    keep an equal one (published by another process first).

    Raises:
        FileExistsError: ``folder`` is non-empty and holds no manifest.
    """
    while True:
        try:
            os.rename(staging, folder)
            return
        except OSError as error:
            if error.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
        if read_manifest(folder, manifest_name) == manifest:
            return  # another process published the same content first
        if not os.path.isfile(os.path.join(folder, manifest_name)):
            raise FileExistsError(
                f"{folder} exists, is not empty and holds no {manifest_name}: it is not a {what} "
                "(or an interrupted run left it). Delete it or pick another root.")
        stale = f"{folder}.stale-{uuid.uuid4().hex}"
        try:
            os.rename(folder, stale)
        except FileNotFoundError:
            continue  # another process moved it already
        shutil.rmtree(stale, ignore_errors=True)
