"""Safety rules, checked on the source (docs/reliability.md, "Safety").

- No pickle-based loading: no ``pickle``/``joblib``/``dill`` import, every
  ``torch.load`` passes ``weights_only=True``, no ``np.load(..., allow_pickle=True)``.
- Nothing downloads at run time: every third-party ``from_pretrained`` call
  passes ``local_files_only=True``; no HTTP client or hub-download helper is used.
- Config values never reach a shell unquoted: every placeholder in a workflow
  ``shell:`` command is quoted with ``:q``, or is one of the few parameters
  built with :func:`shlex.quote` or validated as an integer.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("brainalign", "decoders", "kernels")
SOURCES = sorted(p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py"))
WORKFLOW = [REPO / "Snakefile", *sorted((REPO / "workflows" / "rules").glob("*.smk"))]
# Shell placeholders that are not quoted with ``:q``, and why that is safe.
PREQUOTED = {
    "params.threads": "an integer (config schema: threads)",
    "params.raw": "built with shlex.quote (common.smk: raw_argument; electro.smk: electro_raw_argument)",
    "params.captioner": "built with shlex.quote (decoding.smk: captioner_argument)",
    "params.dirs": "built with shlex.quote (decoding.smk: decoding_report)",
    "params.checkpoint": "built with shlex.quote (reading.smk: checkpoint_argument, for surprisal and verbatim)",
    "params.surprisal": "built with shlex.quote (reading.smk: reading_scores)",
    "params.history": "built with shlex.quote (reading.smk: reading_scores)",
    "params.ngram": "built with shlex.quote (reading.smk: reading_scores)",
}
NETWORK_NAMES = {"urllib", "requests", "httpx", "http", "urlretrieve", "hf_hub_download",
                 "snapshot_download", "cached_download", "load_dataset"}


def _trees() -> list[tuple[Path, ast.Module]]:
    return [(p, ast.parse(p.read_text(encoding="utf-8"), filename=str(p))) for p in SOURCES]


def _where(path: Path, node: ast.AST) -> str:
    return f"{path.relative_to(REPO)}:{node.lineno}"


def _keyword(call: ast.Call, name: str):
    for kw in call.keywords:
        if kw.arg == name and isinstance(kw.value, ast.Constant):
            return kw.value.value
    return None


def _own_loaders(trees) -> set[str]:
    """Classes of this project that define ``from_pretrained`` (they pass local_files_only themselves)."""
    return {node.name for _, tree in trees for node in ast.walk(tree)
            if isinstance(node, ast.ClassDef)
            and any(isinstance(f, ast.FunctionDef) and f.name == "from_pretrained" for f in node.body)}


def test_sources_were_found():
    assert len(SOURCES) > 50 and all(p.exists() for p in WORKFLOW)


def test_no_pickle_based_loading():
    problems = []
    for path, tree in _trees():
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) else [])
                if any(n and n.split(".")[0] in {"pickle", "cPickle", "joblib", "dill", "cloudpickle"}
                       for n in names):
                    problems.append(f"{_where(path, node)}: imports a pickle library")
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                owner = node.func.value
                owner_name = owner.id if isinstance(owner, ast.Name) else getattr(owner, "attr", "")
                if node.func.attr == "load" and owner_name == "torch" and _keyword(node, "weights_only") is not True:
                    problems.append(f"{_where(path, node)}: torch.load without weights_only=True")
                if node.func.attr == "load" and owner_name == "np" and _keyword(node, "allow_pickle") is True:
                    problems.append(f"{_where(path, node)}: np.load with allow_pickle=True")
    assert not problems, "\n".join(problems)


def test_nothing_downloads_at_run_time():
    trees = _trees()
    own = _own_loaders(trees)
    problems = []
    for path, tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) else [])
                bad = [n for n in names if n and n.split(".")[0] in NETWORK_NAMES]
                if bad:
                    problems.append(f"{_where(path, node)}: imports {bad}")
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "from_pretrained"):
                owner = node.func.value
                owner_name = owner.id if isinstance(owner, ast.Name) else ""
                if owner_name in own or owner_name == "cls":
                    continue  # our own loaders: checked where they call the third-party one
                if _keyword(node, "local_files_only") is not True:
                    problems.append(f"{_where(path, node)}: {owner_name}.from_pretrained "
                                    "without local_files_only=True")
    assert not problems, "\n".join(problems)


def _block_lines(path: Path, directive: str) -> list[tuple[int, str]]:
    """The lines of every ``<directive>:`` block (``shell``, ``params``) of a Snakemake file."""
    lines = path.read_text(encoding="utf-8").splitlines()
    out, indent = [], None
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        current = len(line) - len(line.lstrip())
        if indent is not None:
            if stripped and current <= indent:
                indent = None
            elif stripped:
                out.append((number, stripped))
                continue
        if stripped == f"{directive}:":
            indent = current
    return out


def test_workflow_shell_commands_quote_every_value():
    commands = [(path, number, text) for path in WORKFLOW for number, text in _block_lines(path, "shell")]
    assert len(commands) > 20  # the parser found the commands
    problems = []
    for path, number, text in commands:
        for placeholder in re.findall(r"(?<!\{)\{([^{}]+)\}(?!\})", text):
            name, _, spec = placeholder.partition(":")
            if spec == "q" or name in PREQUOTED:
                continue
            problems.append(f"{path.name}:{number}: {{{placeholder}}} reaches the shell unquoted")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", sorted(PREQUOTED))
def test_prequoted_parameters_are_quoted_where_built(name):
    """Each unquoted parameter is built with shlex.quote (or is the integer thread count)."""
    text = "\n".join(p.read_text(encoding="utf-8") for p in WORKFLOW)
    param = name.split(".", 1)[1]
    params = [line for path in WORKFLOW for _, line in _block_lines(path, "params")]
    definitions = [line.split("=", 1)[1] for line in params if line.startswith(f"{param}=")]
    assert definitions, name
    for definition in definitions:
        if param == "threads":
            assert definition.strip().rstrip(",") == "THREADS"
            continue
        function = definition.strip().rstrip(",")
        if function.startswith("lambda"):
            assert "shlex.quote" in function, definition
        else:
            body = re.search(rf"def {re.escape(function)}\(.*?(?=\n(?:def |rule |\S))", text, flags=re.DOTALL)
            assert body and "shlex.quote" in body.group(0), function
