"""Where vertspine's datasets live: ``$VERTSPINE_DATASETS``, default ``datasets`` (relative to
the working directory), and the error for a dataset whose conversion has not been run."""
import os

__all__ = ["datasets_root", "require_converted_json"]


def datasets_root(*parts: str) -> str:
    """``$VERTSPINE_DATASETS`` (default "datasets") joined with ``parts``, read at each call."""
    return os.path.join(os.environ.get("VERTSPINE_DATASETS", "datasets"), *parts)


def require_converted_json(json_file: str, dataset: str, command: str, folder: str) -> None:
    """Raise when a converter has not written ``json_file`` (a registered dataset's ``prepare``).

    Args:
        json_file: the converter's output that the dataset loads.
        dataset: what is missing, for the message, e.g. "verse20_val".
        command: the command that writes ``json_file``.
        folder: the converter's output folder under ``$VERTSPINE_DATASETS``, e.g. "verse20".
    Raises:
        FileNotFoundError: ``json_file`` does not exist; the message names it, the command and
            the folder ``VERTSPINE_DATASETS`` must hold.
    """
    if not os.path.isfile(json_file):
        raise FileNotFoundError(
            f"{dataset} is not converted: {os.path.abspath(json_file)} does not exist. Convert "
            f"it with `{command}`, or set VERTSPINE_DATASETS to the folder that holds {folder}/ "
            "(see datasets/README.md).")
