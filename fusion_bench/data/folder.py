"""Whether a folder is in the ``features`` format, and which modalities it has. The configuration
asks this before any dataset is built; it lives apart from :mod:`.features` (which reads its
options through :mod:`fusion_bench.options`, which imports the configuration) so that no import
goes round in a circle."""

from __future__ import annotations

from pathlib import Path

USUAL_ORDER = ("visual", "audio", "text")  # modalities named so come first, in this order


def folder_modalities(root: str | Path) -> tuple[str, ...]:
    """The modalities a folder has (``features/<modality>/`` folders, hidden ones aside): visual,
    audio, text first in that order, the others after by name; () without a features folder."""
    fdir = Path(root) / "features"
    if not fdir.is_dir():
        return ()
    names = {p.name for p in fdir.iterdir() if p.is_dir() and not p.name.startswith(".")}
    return tuple(m for m in USUAL_ORDER if m in names) + tuple(sorted(names - set(USUAL_ORDER)))


def format_problem(root: str | Path) -> str | None:
    """Why ``root`` is not a folder of this format (a phrase), or None if it looks like one."""
    root = Path(root)
    if not root.is_dir():
        return f"{root} does not exist" if not root.exists() else f"{root} is not a folder"
    if not folder_modalities(root):
        return f"{root} has no features/<modality>/ folder"
    if not any((root / f).is_file() for f in ("splits.csv", "splits.json")):
        return f"{root} has no splits.csv or splits.json"
    return None
