"""Shared fixtures: the real datasets in ../shared/data, strict mode, and SIGKILL.

Tests that need ``../shared/data`` skip with a stated reason when it is absent,
so that a user's clone still passes. With ``BRAINALIGN_STRICT=1`` (set by
``.ci/run``) a missing dataset is a failure instead, so CI always runs them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

# Triton kernels run in its CPU interpreter here (no GPU); the variable must be
# set before Triton compiles anything, i.e. before any test imports it.
os.environ.setdefault("TRITON_INTERPRET", "1")
# The suite runs as two xdist workers on two cores: one BLAS/OpenMP thread per worker.
# Left alone, each worker's libraries start one thread per core and the workers, and
# the workflow jobs they start, oversubscribe the machine. Set before numpy loads.
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import pytest

REPO = Path(__file__).resolve().parent.parent


def _without_slurm_probe() -> None:
    """Put a failing ``scontrol`` first on PATH for the tests' subprocesses.

    No test talks to SLURM (``.ci/slurm`` does, after the tests). But the SLURM
    executor plugin runs ``scontrol show config`` when Snakemake starts, and on a
    machine with SLURM's client tools and no controller that waits for its 10 s
    timeout: 10 s of idling per Snakemake call. A failing ``scontrol`` is what
    the plugin sees on a machine without SLURM.
    """
    import atexit
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="brainalign-no-slurm-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    stub = folder / "scontrol"
    stub.write_text("#!/bin/sh\nexit 1\n")
    stub.chmod(0o755)
    os.environ["PATH"] = f"{folder}{os.pathsep}{os.environ.get('PATH', '')}"


_without_slurm_probe()
SHARED_DATA = Path(os.environ.get("BRAINALIGN_SHARED_DATA", REPO.parent / "shared" / "data"))
STRICT = os.environ.get("BRAINALIGN_STRICT", "0") == "1"


def pytest_collection_modifyitems(items):
    """Run the modules with end-to-end workflows or full-size checks first.

    Under ``-n 2 --dist loadfile --no-loadscope-reorder`` (pyproject.toml) each worker
    takes the next module when it runs low, so putting the long modules (a minute or
    more each) first leaves the many short ones to fill in at the end, instead of one
    worker finishing a long module alone. The order within a module is unchanged.
    """
    def is_long(item) -> bool:
        return ("snakemake" in getattr(item, "fixturenames", ())
                or item.get_closest_marker("workflow") is not None
                or item.get_closest_marker("slow") is not None)

    long_modules = {item.path for item in items if is_long(item)}
    items.sort(key=lambda item: item.path not in long_modules)  # stable: keeps the order within each group


def require_path(path: Path, what: str) -> Path:
    """Return ``path`` if it exists; otherwise skip (or fail in strict mode)."""
    if path.exists():
        return path
    message = f"{what} not found at {path} (set BRAINALIGN_SHARED_DATA or clone beside ../shared)"
    if STRICT:
        pytest.fail(f"BRAINALIGN_STRICT=1 and {message}")
    pytest.skip(message)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return require_path(SHARED_DATA, "the shared datasets folder")


@pytest.fixture(scope="session")
def mne_misc_dir(shared_data: Path) -> Path:
    """MNE's misc test files: the ERP CORE P3 evokeds and the ECoG/sEEG sample."""
    return require_path(shared_data / "mne_misc", "mne_misc (ERP CORE P3, ECoG sample)")


@pytest.fixture(scope="session")
def alice_dir(shared_data: Path) -> Path:
    return require_path(shared_data / "brennan2016_alice", "the Alice (Brennan 2016) dataset")


@pytest.fixture(scope="session")
def langloc_dir(shared_data: Path) -> Path:
    return require_path(shared_data / "fedorenko2010_langloc", "the Fedorenko (2010) localizer stimuli")


@pytest.fixture(scope="session")
def naturalstories_dir(shared_data: Path) -> Path:
    return require_path(shared_data / "naturalstories", "Natural Stories (reading times, n-gram counts, GPT-3 log-probabilities)")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


FAULT_INJECTION = Path(__file__).resolve().parent / "fault_injection"


class Snakemake:
    """The workflow (``Snakefile``, 2 cores) run in a subprocess with this interpreter's tools on PATH.

    ``scratch`` holds the markers of :meth:`kill`.
    """

    def __init__(self, scratch: Path):
        self.scratch = scratch

    def command(self, workdir: Path, *args: str) -> list[str]:
        return [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--cores", "2",
                "-d", str(workdir), *args]

    def env(self) -> dict[str, str]:
        return dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")

    def __call__(self, workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run to the end; with ``check``, fail the test with Snakemake's stderr if it fails."""
        proc = subprocess.run(self.command(workdir, *args), capture_output=True, text=True, env=self.env(),
                              check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
        return proc

    #: A hang guard, not a performance bound: how long a run may take to reach its kill
    #: point on a loaded machine. The kill waits for the event (a marker written
    #: atomically by the stalled writer, or the watched path), never for a fixed time.
    KILL_POINT_TIMEOUT = 2400.0

    def kill(self, workdir: Path, *args: str, stall: str | None = None, when: Path | None = None,
             during=None, timeout: float = KILL_POINT_TIMEOUT) -> Path | None:
        """Start a run and SIGKILL its whole process group mid-run.

        Either ``stall``: the name of an HDF5 output; its writer stalls with the file
        half-written (``fault_injection/sitecustomize.py``) and the kill lands there;
        the temporary file's path is returned. Or ``when``: a path; the run is killed
        as soon as it exists. ``during``: called while the run is stopped there,
        before the kill. Fails if the run ends by itself before the kill.
        """
        env = self.env()
        marker = self.scratch / f"stall-{uuid.uuid4().hex}.txt"
        log = marker.with_suffix(".log")
        if stall is not None:
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(FAULT_INJECTION), env.get("PYTHONPATH")]))
            env["BRAINALIGN_STALL_WRITE"] = stall
            env["BRAINALIGN_STALL_MARKER"] = str(marker)
        watched = marker if stall is not None else when
        with open(log, "w", encoding="utf-8") as err:
            proc = subprocess.Popen(self.command(workdir, *args), stdout=subprocess.DEVNULL, stderr=err,
                                    start_new_session=True, env=env)
        deadline = time.monotonic() + timeout
        try:
            while not watched.exists():
                if proc.poll() is not None:
                    raise AssertionError(f"the run ended (status {proc.returncode}) before {watched.name} "
                                         f"appeared:\n{log.read_text(errors='replace')[-4000:]}")
                assert time.monotonic() < deadline, f"{watched} did not appear within {timeout:.0f} s"
                time.sleep(0.1)
            # The stalled writer sleeps until killed; a run watched by `when` must still be going.
            assert proc.poll() is None, (f"the run ended (status {proc.returncode}) as {watched.name} appeared:"
                                         f"\n{log.read_text(errors='replace')[-4000:]}")
            part = Path(marker.read_text(encoding="utf-8")) if stall is not None else None
            assert part is None or part.name.endswith(".part"), f"the marker names {part!r}, not a temporary file"
            if during is not None:
                during()
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)  # Snakemake and every job it started
            proc.wait()
        return part


@pytest.fixture(scope="session")
def snakemake(tmp_path_factory) -> Snakemake:
    """``snakemake(workdir, *args)``, ``snakemake.kill(workdir, *args, stall=... | when=...)``,
    ``snakemake.command(...)``, ``snakemake.env()``: see :class:`Snakemake`."""
    return Snakemake(tmp_path_factory.mktemp("kill markers"))


def _digest(results: Path) -> dict[str, str]:
    """SHA-256 of every table, checkpoint and HDF5 dataset under ``results`` (logs and timings aside).

    HDF5 files are compared dataset by dataset (values, dtype and shape), because
    their bytes also hold object-header metadata that is not part of the result.
    """
    import hashlib

    import h5py
    import numpy as np

    def sha(data: bytes) -> str:
        return hashlib.sha256(data).hexdigest()

    out: dict[str, str] = {}
    for path in sorted(results.rglob("*")):
        rel = path.relative_to(results).as_posix()
        if rel.split("/")[0] in ("logs", "benchmarks") or not path.is_file():
            continue
        if path.suffix in (".csv", ".tsv", ".safetensors"):
            out[rel] = sha(path.read_bytes())
        elif path.suffix == ".h5":
            with h5py.File(path, "r") as f:
                def visit(name, obj, rel=rel):
                    if isinstance(obj, h5py.Dataset):
                        value = np.asarray(obj[()])
                        data = repr(value.tolist()).encode() if value.dtype.kind == "O" else value.tobytes()
                        out[f"{rel}:{name}"] = sha(repr((value.dtype.str, value.shape)).encode() + data)
                f.visititems(visit)
    return out


@pytest.fixture(scope="session")
def results_digest():
    """``results_digest(folder)``: see :func:`_digest`."""
    return _digest


def _seed_fields() -> list[tuple[str, ...]]:
    """Every ``seed`` field of the config schema, as key paths (e.g. ("decoding", "generator", "seed"))."""
    import json

    schema = json.loads((REPO / "brainalign" / "schemas" / "config.schema.json").read_text())
    found: list[tuple[str, ...]] = []

    def walk(node, path):
        for key, sub in node.get("properties", {}).items():
            if key == "seed":
                found.append((*path, key))
            elif isinstance(sub, dict):
                walk(sub, (*path, key))

    walk(schema, ())
    return found


def _unrecorded_seeds(results: Path) -> list[str]:
    """Outputs under ``results`` whose provenance is missing or lacks a seed of the config.

    Tables carry ``<name>.json``, HDF5 files a ``provenance`` attribute; a folder
    of other files (FIF recordings, checkpoints) needs one provenance record in it.
    """
    import json

    import h5py

    seeds = _seed_fields()
    problems: list[str] = []

    def check(where: str, text: str | None) -> None:
        if text is None:
            problems.append(f"{where}: no provenance")
            return
        config = json.loads(text).get("config", {})
        for path in seeds:
            node = config
            for key in path:
                node = node.get(key) if isinstance(node, dict) else None
            if not isinstance(node, int):
                problems.append(f"{where}: seed {'.'.join(path)} not recorded")

    folders: set[Path] = set()
    for path in sorted(results.rglob("*")):
        rel = path.relative_to(results).as_posix()
        if not path.is_file() or rel.split("/")[0] in ("logs", "benchmarks", "figures") or path.suffix == ".json":
            continue
        if path.suffix in (".csv", ".tsv"):
            sidecar = path.with_name(path.name + ".json")
            check(rel, sidecar.read_text() if sidecar.exists() else None)
        elif path.suffix == ".h5":
            with h5py.File(path, "r") as f:
                check(rel, f.attrs.get("provenance"))
        elif path.suffix in (".fif", ".safetensors", ".gz"):
            folders.add(path.parent)
    for folder in sorted(folders):
        # The nearest record in the folder or a parent folder below results/ (a folder output).
        chain = [folder, *folder.parents[: len(folder.relative_to(results).parts) - 1]] if folder != results \
            else [results]
        records = [p for d in chain for p in sorted(d.glob("*.json"))
                   if json.loads(p.read_text()).get("config") is not None]
        check(folder.relative_to(results).as_posix() + "/", records[0].read_text() if records else None)
    return problems


@pytest.fixture(scope="session")
def unrecorded_seeds():
    """``unrecorded_seeds(results)``: see :func:`_unrecorded_seeds` (an empty list is a pass)."""
    return _unrecorded_seeds


# --------------------------------------------------------------------------- tiny image models on disk
#: Input size of the tiny image models below (pixels).
TINY_IMAGE_SIZE = 32


def tiny_image_processor():
    """The CLIP-style image processor saved beside the tiny CLIP and GIT models."""
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(size={"shortest_edge": TINY_IMAGE_SIZE},
                              crop_size={"height": TINY_IMAGE_SIZE, "width": TINY_IMAGE_SIZE})


@pytest.fixture(scope="session")
def tiny_clip_vision(tmp_path_factory) -> Path:
    """A random-weight ``CLIPVisionModelWithProjection`` (projection 16) and its processor, in a folder."""
    import torch
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("clip_vision")
    CLIPVisionModelWithProjection(CLIPVisionConfig(
        image_size=TINY_IMAGE_SIZE, patch_size=8, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, projection_dim=16)).save_pretrained(folder)
    tiny_image_processor().save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_git(tmp_path_factory) -> Path:
    """A random-weight ``GitForCausalLM`` (vision tokens of width 32), its processor and a word-level tokenizer."""
    import torch
    from transformers import GitConfig, GitForCausalLM

    torch.manual_seed(1)
    folder = tmp_path_factory.mktemp("git")
    GitForCausalLM(GitConfig(
        vision_config={"image_size": TINY_IMAGE_SIZE, "patch_size": 8, "hidden_size": 32, "intermediate_size": 64,
                       "num_hidden_layers": 2, "num_attention_heads": 2},
        vocab_size=60, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=64, bos_token_id=2, eos_token_id=3, pad_token_id=0)).save_pretrained(folder)
    tiny_image_processor().save_pretrained(folder)
    from transformers import BertTokenizerFast

    words = "a an the red blue green cat dog man woman car tree house sky on in with of".split()
    (folder / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    BertTokenizerFast(str(folder / "vocab.txt")).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_dpt(tmp_path_factory) -> Path:
    """A random-weight ``DPTForDepthEstimation`` and its image processor, in a folder."""
    import torch
    from transformers import DPTConfig, DPTForDepthEstimation, DPTImageProcessor

    torch.manual_seed(2)
    folder = tmp_path_factory.mktemp("dpt")
    DPTForDepthEstimation(DPTConfig(
        image_size=TINY_IMAGE_SIZE, patch_size=8, hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
        intermediate_size=64, neck_hidden_sizes=[8, 16, 32, 32], fusion_hidden_size=16,
        backbone_out_indices=[0, 1, 2, 3], is_hybrid=False, head_in_index=-1)).save_pretrained(folder)
    DPTImageProcessor(size={"height": TINY_IMAGE_SIZE, "width": TINY_IMAGE_SIZE},
                      keep_aspect_ratio=False).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_sd_depth(tmp_path_factory) -> tuple[Path, Path]:
    """A random-weight Stable Diffusion img2img folder (32 px images, (4, 16, 16) latents; its VAE in ``vae/``)
    and a depth ControlNet folder: (pipeline folder, ControlNet folder)."""
    from brainalign.decoders.diffusion import build_tiny_img2img

    folder = tmp_path_factory.mktemp("tiny_sd")
    rec = build_tiny_img2img(seed=0, controlnet=True)
    rec.pipeline.save_pretrained(folder / "sd")
    rec.controlnet_pipeline.controlnet.save_pretrained(folder / "controlnet")
    return folder / "sd", folder / "controlnet"
