#!/usr/bin/env python
"""Download the official SAM and OpenAI CLIP checkpoints VertFound uses into weights/.

    python scripts/download_weights.py --list                 # names, URLs, sha256; no download
    python scripts/download_weights.py                        # sam_vit_b + clip_vit_l14 (defaults)
    python scripts/download_weights.py sam_vit_h clip_vit_b16 --output weights

Each file is streamed to a temporary file beside its target with a progress line, its SHA-256
is computed on the way and compared with the expected one, and only then is it renamed into
place (a failed or corrupt download leaves nothing behind). Files already present with the
right checksum are skipped. Where no checksum is known it says "unknown" and the file is kept
unverified, with its computed SHA-256 printed.

Checksums: OpenAI puts the SHA-256 of each CLIP file in its URL (openai/CLIP's ``clip.py`` and
open_clip's ``pretrained.py`` check it). Meta publishes no checksum for the SAM files; the
values below are the ones independent projects pin in their own download checks (e.g.
``sha256sum -c`` in Dockerfiles), not verified from this repository's machines.
"""
import argparse
import hashlib
import os
import sys
import urllib.request
from dataclasses import dataclass
from typing import Optional

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

from vertspine.utils.file_io import atomic_write, file_sha256  # noqa: E402

_OPENAI = "https://openaipublic.azureedge.net/clip/models"
_SAM = "https://dl.fbaipublicfiles.com/segment_anything"


@dataclass(frozen=True)
class Weight:
    """One downloadable checkpoint."""

    url: str
    sha256: Optional[str]  # None = unknown
    config: str  # the config key that points at the file


WEIGHTS = {
    "sam_vit_b": Weight(f"{_SAM}/sam_vit_b_01ec64.pth",
                        "ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912",
                        "MODEL.VERTFOUND.SAM.CHECKPOINT (SAM.MODEL_TYPE vit_b)"),
    "sam_vit_l": Weight(f"{_SAM}/sam_vit_l_0b3195.pth",
                        "3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622",
                        "MODEL.VERTFOUND.SAM.CHECKPOINT (SAM.MODEL_TYPE vit_l)"),
    "sam_vit_h": Weight(f"{_SAM}/sam_vit_h_4b8939.pth",
                        "a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e",
                        "MODEL.VERTFOUND.SAM.CHECKPOINT (SAM.MODEL_TYPE vit_h)"),
    "clip_vit_b16": Weight(f"{_OPENAI}/5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f/ViT-B-16.pt",
                           "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f",
                           "MODEL.VERTFOUND.CLIP.PRETRAINED (CLIP.MODEL_NAME ViT-B-16)"),
    "clip_vit_l14": Weight(f"{_OPENAI}/b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836/ViT-L-14.pt",
                           "b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836",
                           "MODEL.VERTFOUND.CLIP.PRETRAINED (CLIP.MODEL_NAME ViT-L-14)"),
    "clip_vit_l14_336": Weight(f"{_OPENAI}/3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02/ViT-L-14-336px.pt",
                               "3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02",
                               "MODEL.VERTFOUND.CLIP.PRETRAINED (CLIP.MODEL_NAME ViT-L-14-336)"),
}
DEFAULT_NAMES = ("sam_vit_b", "clip_vit_l14")  # VertFound's recipe
_BLOCK = 1 << 20


def file_name(weight: Weight) -> str:
    """The file name under the output folder: the URL's last component."""
    return weight.url.rsplit("/", 1)[1]


def verify_sha256(path: str, expected: Optional[str]) -> bool:
    """True when ``path`` exists and its SHA-256 equals ``expected`` (case-insensitive).

    Raises:
        ValueError: ``expected`` is None (unknown: nothing to verify against).
    """
    if expected is None:
        raise ValueError(f"No known SHA-256 for {path}: it cannot be verified.")
    return os.path.isfile(path) and file_sha256(path) == expected.lower()


def download(weight: Weight, output: str) -> str:
    """Download ``weight`` into ``output`` atomically, checking its SHA-256; returns the path."""
    target = os.path.join(output, file_name(weight))
    if weight.sha256 and verify_sha256(target, weight.sha256):
        print(f"{target}: present, sha256 ok")
        return target
    digest = hashlib.sha256()
    with urllib.request.urlopen(weight.url, timeout=60) as response, atomic_write(target, "wb") as f:
        total, done = int(response.headers.get("Content-Length") or 0), 0
        for block in iter(lambda: response.read(_BLOCK), b""):
            f.write(block)
            digest.update(block)
            done += len(block)
            shown = f"{100 * done / total:5.1f}%" if total else f"{done >> 20} MiB"
            print(f"\r{file_name(weight)}: {shown}", end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
        if weight.sha256 and digest.hexdigest() != weight.sha256:
            raise ValueError(f"{weight.url}: sha256 {digest.hexdigest()} != expected "
                             f"{weight.sha256}; nothing was written.")
    status = "sha256 ok" if weight.sha256 else f"sha256 unknown, computed {digest.hexdigest()}"
    print(f"{target}: downloaded, {status}")
    return target


def print_list() -> None:
    for name, weight in WEIGHTS.items():
        print(f"{name}\n  url:    {weight.url}\n  file:   weights/{file_name(weight)}\n"
              f"  sha256: {weight.sha256 or 'unknown'}\n  config: {weight.config}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"which ({', '.join(WEIGHTS)}); default: "
                                                 f"{' '.join(DEFAULT_NAMES)}")
    parser.add_argument("--list", action="store_true", help="print names, URLs, checksums; download nothing")
    parser.add_argument("--all", action="store_true", help="download every listed checkpoint")
    parser.add_argument("--output", default=os.path.join(REPO_ROOT, "weights"))
    args = parser.parse_args(argv)
    if args.list:
        print_list()
        return 0
    names = list(WEIGHTS) if args.all else (args.names or list(DEFAULT_NAMES))
    unknown = [n for n in names if n not in WEIGHTS]
    if unknown:
        parser.error(f"unknown names {unknown}; choose from {', '.join(WEIGHTS)}")
    for name in names:
        try:
            download(WEIGHTS[name], args.output)
        except (OSError, ValueError) as e:
            print(f"error: {name}: {e}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
