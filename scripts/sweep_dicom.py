#!/usr/bin/env python
"""Read every file under a folder with vertspine's readers and report what reads and what not.

    python scripts/sweep_dicom.py                 # pydicom's bundled test corpus
    python scripts/sweep_dicom.py --folder /data/dicom_archive --verbose

Each file goes through :func:`vertspine.data.readers.read_image_and_meta` (DICOM by ending or
by the ``DICM`` preamble). Prints, per file with ``--verbose``, the array shape and dtype or the
first line of the error; then the counts: files read, files that hold no image (reports, RT
plans, waveforms, DICOMDIRs: refused by design), other files refused, grouped by reason.
"""
import argparse
import collections
import logging
import os
import sys
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import vertspine  # noqa: E402,F401  (first: detectron2 without compiled ops)
from vertspine.data.readers import ImageReadError, read_image_and_meta  # noqa: E402

NO_IMAGE = "without pixel data"  # the reader's words for a DICOM object that is not an image


def default_folder() -> str:
    import pydicom.data

    return os.path.join(os.path.dirname(pydicom.data.__file__), "test_files")


def sweep(folder: str, verbose: bool) -> int:
    """Print the per-file outcomes (``verbose``) and the summary; return the number refused."""
    read, no_image, refused = [], [], collections.defaultdict(list)
    for directory, _, names in sorted(os.walk(folder)):
        for name in sorted(names):
            path = os.path.join(directory, name)
            relative = os.path.relpath(path, folder)
            try:
                array, meta = read_image_and_meta(path)
            except (ImageReadError, OSError) as e:
                reason = str(e).replace(path, "<file>").splitlines()[0]
                (no_image.append(relative) if NO_IMAGE in reason
                 else refused[reason.split(";")[0][:90]].append(relative))
                if verbose:
                    print(f"REFUSED {relative}: {reason[:160]}")
                continue
            read.append(relative)
            if verbose:
                print(f"READ    {relative}: {array.shape} {array.dtype}, {meta.spatial_dims}D, "
                      f"spacing {tuple(round(s, 4) for s in meta.spacing)}")
    total = len(read) + len(no_image) + sum(len(v) for v in refused.values())
    print(f"{folder}: {total} files; read {len(read)}; no image (refused by design) "
          f"{len(no_image)}; other refused {total - len(read) - len(no_image)}")
    for reason, files in sorted(refused.items(), key=lambda item: -len(item[1])):
        print(f"  {len(files):4d}  {reason}  e.g. {', '.join(files[:3])}")
    return total - len(read) - len(no_image)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--folder", default=None, help="default: pydicom's bundled test files")
    parser.add_argument("--verbose", action="store_true", help="one line per file")
    args = parser.parse_args()
    logging.disable(logging.ERROR)  # pydicom logs each failed decoder; the summary names them
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        folder = args.folder or default_folder()
        if not os.path.isdir(folder):
            parser.error(f"--folder {folder!r} is not a folder; name the folder to sweep.")
        sweep(folder, args.verbose)


if __name__ == "__main__":
    main()
