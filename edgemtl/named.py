"""YAML files named by path or by their stem in one of edgemtl's folders (recipes in ``models/``,
export profiles in ``export/``, bench suites in ``benchmarks/``)."""

from __future__ import annotations

from pathlib import Path

from edgemtl.errors import EdgeMTLError, did_you_mean


def resolve_named_yaml(name: str | Path, folder: Path, kind: str, label: str) -> Path:
    """``name`` if it is a file, else ``folder/name`` or ``folder/name.yaml``; otherwise an error that
    starts with ``label`` (the flag or word the user typed) and lists the known names."""
    p = Path(name)
    if p.is_file():
        return p
    for cand in (folder / str(name), folder / f"{name}.yaml"):
        if cand.is_file():
            return cand
    known = sorted(f.stem for f in folder.glob("*.yaml")) if folder.is_dir() else []
    raise EdgeMTLError(
        f"{label} {name}: not a file nor a {kind} in {folder}.{did_you_mean(p.stem, known)} "
        f"Known {kind}s: {', '.join(known) or 'none'}"
    )


def read_named_yaml(
    name: str | Path, folder: Path, kind: str, label: str, mapping_of: str, path_prefix: str = ""
) -> tuple[Path, dict]:
    """Resolve ``name`` (see ``resolve_named_yaml``) and parse it as a YAML mapping; errors name
    the file (after ``path_prefix``, e.g. the flag) and say what the mapping should hold."""
    import yaml

    path = resolve_named_yaml(name, folder, kind, label)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        # PyYAML's message spans several lines (context, a caret under the column): one line here
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise EdgeMTLError(f"{path_prefix}{path}: invalid YAML{where}: {problem}") from None
    if not isinstance(data, dict):
        raise EdgeMTLError(f"{path_prefix}{path}: a {kind} is a mapping {mapping_of}")
    return path, data
