"""The dataset kinds: one protocol, one registry.

A config's ``dataset.kind`` names a :class:`DatasetKind`. The kind says which
*modality* the workflow runs (and so which rules, stages and report sections
apply), checks its part of the config, lists subjects, reads words and
responses, and credits the data. Everything outside ``brainalign/datasets/``
asks the kind instead of comparing kind strings, so adding a dataset is one
module plus one line in :data:`KINDS` (and, for new config fields, a schema
fragment: :attr:`DatasetKind.schema`). A kind in another package is added by
that package's entry point in the group ``brainalign.dataset_kinds``
(``my_kind = "my_package.module:MyKind"``), which every workflow job sees, or
in one process with :func:`register_kind`.

Modalities
----------
``"roi"``
    Time series of named units (ROIs, parcels or voxels without a brain
    grid), one file per subject: ``responses`` → ``design`` → ``score`` →
    ``report``, with noise ceilings and variance partitioning.
``"volume"``
    NIfTI images in a brain mask: as ``"roi"``, plus voxel maps.
``"electro"``
    MEG/EEG/sEEG recordings: ``epochs`` → contrastive identification or word
    decoding → report.
``"images"``
    Image-evoked fMRI betas: decoders → retrieval, captions and images.
``"reading"``
    Reading times per word: language models trained here (and given by
    path or as predictor files) → per-word surprisal → Futrell2018 score and
    regression gain → report.

Examples
--------
>>> from brainalign.datasets.registry import get_kind
>>> get_kind("alice").modality
'roi'
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from .._validation import BrainalignError, ConfigError, InputFileError
from ._preflight import count

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pandas as pd

    from ..io import Responses

__all__ = ["ENTRY_POINT_GROUP", "FMRI_MODALITIES", "KINDS", "MODALITIES", "DatasetKind", "ElectroKind", "ImageData", "ImagesKind", "PlantedSimulation", "Preflight", "ReadingKind", "Sampling", "VolumeKind", "get_kind", "registry_generation", "selected_subjects", "volume_kinds", "kind_names", "register_kind",
           "compose_schema"]

MODALITIES = ("roi", "volume", "electro", "images", "reading")
#: The modalities of fMRI time series: their samples per run are checked against the CV folds.
FMRI_MODALITIES = ("roi", "volume")

#: Kind name -> ``"module:class"`` of its :class:`DatasetKind`, imported on first use.
KINDS: dict[str, str] = {
    "simulated": "brainalign.datasets.simulated:SimulatedKind",
    "alice": "brainalign.datasets.alice:AliceKind",
    "timeseries": "brainalign.datasets.timeseries:TimeseriesKind",
    "bids": "brainalign.datasets.bids:BidsKind",
    "simulated_bids": "brainalign.datasets.simulated_bids:SimulatedBidsKind",
    "simulated_meeg": "brainalign.datasets.simulated_meeg:SimulatedMeegKind",
    "simulated_seeg": "brainalign.datasets.simulated_meeg:SimulatedSeegKind",
    "meeg_bids": "brainalign.datasets.meeg_bids:MeegBidsKind",
    "recordings": "brainalign.datasets.recordings:RecordingsKind",
    "simulated_images": "brainalign.datasets.simulated_images:SimulatedImagesKind",
    "nsd": "brainalign.datasets.nsd:NsdKind",
    "naturalstories": "brainalign.datasets.naturalstories:NaturalStoriesKind",
}

#: Entry-point group through which installed packages add kinds (``name = "module:Class"``).
ENTRY_POINT_GROUP = "brainalign.dataset_kinds"

_instances: dict[str, DatasetKind] = {}
_entry_points_loaded = False
_generation = 0  # bumped by register_kind: the composed config schema is stale


def registry_generation() -> int:
    """A number that changes whenever :func:`register_kind` changes the registry."""
    return _generation


def _load_entry_points() -> None:
    """Add the kinds installed packages declare in :data:`ENTRY_POINT_GROUP` (built-in names win)."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    from importlib.metadata import entry_points

    for point in entry_points(group=ENTRY_POINT_GROUP):
        KINDS.setdefault(point.name, point.value)
    _entry_points_loaded = True


@dataclass
class Sampling:
    """fMRI samples per run of every analysed subject, and where they come from (:meth:`DatasetKind.preflight`).

    Attributes
    ----------
    lengths : dict of str to list of int
        Subject -> samples (volumes) of each run, runs in label order.
    files : dict of str to list of (Path or None)
        Subject -> the file each run is read from (None: not read from a file).
    field : str
        The config field that sets the samples (named in errors).
    frame_times : dict of int to ndarray
        Run label -> frame times (s) on the events' clock.
    events_path : Path or None
        The file the word table is read from (None: generated).
    events_field : str or None
        The config field named when a word falls outside its run (None: ``field``).
    unit : str
        What the summary calls a sample (``"volumes"``, ``"samples"``).
    source : str
        Where the samples come from when no file holds them, for errors.
    generated : bool
        The samples are generated from the ``simulation`` section.
    """

    lengths: dict[str, list[int]]
    files: dict[str, list[Path | None]]
    field: str
    frame_times: dict[int, np.ndarray]
    events_path: Path | None = None
    events_field: str | None = None
    unit: str = "volumes"
    source: str = ""
    generated: bool = False


@dataclass
class Preflight:
    """What a kind's :meth:`DatasetKind.preflight` checked, for ``brainalign validate``.

    Attributes
    ----------
    facts : list of str
        Phrases for the summary line (``"ROI size 6mm"``, ``"2 subjects, 12 images each"``); for the fMRI
        modalities they follow the subjects, runs and words.
    events : DataFrame or None
        The word table, for the modality's own checks (fMRI: every word inside its run; MEG/EEG/sEEG: the
        test split).
    sampling : Sampling or None
        fMRI modalities: the samples per run, checked against the folds of the score stage.
    """

    facts: list[str] = field(default_factory=list)
    events: pd.DataFrame | None = None
    sampling: Sampling | None = None


class DatasetKind:
    """What the pipeline needs to know about one kind of dataset.

    Subclasses set the class attributes and override the methods their
    modality uses; the defaults raise a clear error for the others.

    Attributes
    ----------
    name : str
        The ``dataset.kind`` value.
    modality : {"roi", "volume", "electro", "images"}
        Which workflow runs (see the module docstring).
    simulated : bool
        The data are generated by brainalign inside ``results/<name>/`` (a
        ``simulate`` rule runs first) from the ``simulation`` section.
    required : tuple of str
        ``dataset`` fields that must be given (not null) for this kind.
    defaults : dict
        Config defaults that depend on the kind: field path (a tuple of keys)
        -> value, applied where the config leaves the field out.
    schema : dict
        JSON-schema properties this kind adds to the ``dataset`` section
        (the fields of other kinds are in ``schemas/config.schema.json``).
    data_field : str
        The config field that says where the data are: a data file's error
        found by :meth:`preflight` is reported on it.
    """

    name: ClassVar[str] = ""
    modality: ClassVar[str] = ""
    simulated: ClassVar[bool] = False
    required: ClassVar[tuple[str, ...]] = ()
    defaults: ClassVar[dict[tuple[str, ...], Any]] = {("preprocessing", "confounds"): "none"}
    schema: ClassVar[dict[str, Any]] = {}
    data_field: ClassVar[str] = "dataset"

    # ------------------------------------------------------------------ config
    def check_config(self, cfg: dict[str, Any], path: str | os.PathLike | None) -> None:
        """Raise :class:`ConfigError` for a config this kind cannot run (after the schema).

        The default checks :attr:`required`.
        """
        for key in self.required:
            if cfg["dataset"].get(key) in (None, ""):
                raise ConfigError(path, f"dataset.{key}", f"is required for dataset.kind {self.name!r}.")

    def resolve(self, cfg: dict[str, Any], base: Path) -> None:
        """Fill derived ``dataset`` fields in place; relative paths are relative to ``base``."""

    # ------------------------------------------------------------------ data
    def subjects(self, cfg: dict[str, Any]) -> list[str]:
        """Every subject label the dataset has (``dataset.subjects`` selects among them)."""
        raise self._unsupported("subjects")

    def events(self, cfg: dict[str, Any]) -> tuple[pd.DataFrame, list[Path]]:
        """The word table (``onset``, ``duration``, ``word``, ``run``, ...) and the files it was read from."""
        raise self._unsupported("a word table")

    def input_files(self, cfg: dict[str, Any], subject: str | None = None) -> list[Path]:
        """Data files a stage reads, for the workflow to track (edited files rerun their stages).

        ``subject`` None: the files the word table is read from; a label: that
        subject's response files. Default: none (simulated data, or data read
        through a folder the workflow does not track file by file).
        """
        return []

    def timing(self, cfg: dict[str, Any], events: pd.DataFrame | None = None,
               ) -> tuple[float, dict[int, np.ndarray]]:
        """fMRI: repetition time (s) and, per run label, frame times (s) on the events' clock."""
        raise self._unsupported("an fMRI clock")

    def responses(self, cfg: dict[str, Any], subject: str, raw: str | os.PathLike | None = None,
                  ) -> tuple[Responses, list[Path]]:
        """``"roi"`` modality: one subject's raw (uncleaned) responses and the files they came from."""
        raise self._unsupported("unit time series")

    def credit(self, cfg: dict[str, Any]) -> str:
        """One plain-text sentence for the report's "Data" line: where the data come from, whom to cite."""
        return f"dataset kind {self.name!r}."

    # ------------------------------------------------------------------ checks before a run
    def preflight(self, cfg: dict[str, Any]) -> Preflight:
        """Check the data a config points at, from headers and line counts (``brainalign validate``).

        A kind checks what only it knows: its files and folders are there, the
        samples of each subject's runs, its masks and atlases. The checks of
        its modality (the CV folds, every word inside its run, the test split)
        are made on what this returns by
        :func:`brainalign.pipeline.preflight.preflight`. Nothing is written.

        The default, for a kind without its own: for the fMRI modalities the
        samples of the kind's clock (:meth:`timing`) for every analysed
        subject, otherwise the number of subjects.

        Parameters
        ----------
        cfg : dict
            The validated config.

        Returns
        -------
        Preflight
            The summary's phrases, the word table, and for fMRI the samples per run.

        Raises
        ------
        ConfigError
            Naming the field, for the first problem found.
        InputFileError
            Naming a data file; reported on :attr:`data_field`.
        """
        if self.modality in FMRI_MODALITIES:
            return self._clock_preflight(cfg, field=self.data_field,
                                         source=f"the clock of dataset.kind {self.name!r}")
        return Preflight([count(len(selected_subjects(cfg)), "subject")])

    def _clock_preflight(self, cfg: dict[str, Any], **sampling: Any) -> Preflight:
        """The samples of the kind's clock (the design's volumes), the same for every analysed subject."""
        events, inputs = self.events(cfg)
        _, frame_times = self.timing(cfg, events)
        lengths = [int(frame_times[r].size) for r in sorted(frame_times)]
        subjects = selected_subjects(cfg)
        sampling.setdefault("events_path", inputs[0] if inputs else None)
        return Preflight(events=events, sampling=Sampling(
            {s: list(lengths) for s in subjects}, {s: [None] * len(lengths) for s in subjects},
            frame_times=frame_times, **sampling))

    def _unsupported(self, what: str) -> BrainalignError:
        return BrainalignError(f"dataset.kind {self.name!r} ({self.modality} modality) has no {what}.")


class VolumeKind(DatasetKind):
    """Base of the NIfTI kinds (BIDS + fMRIPrep layout): voxels in a brain mask, or atlas parcels."""

    modality = "volume"
    # fMRIPrep data default to its confounds (with ``fmriprep_confounds``' defaults:
    # 24 motion parameters, white matter and CSF): head motion left in the data
    # lowers the planted voxels' scores and spreads the others' (docs/bids.md).
    defaults = {("preprocessing", "confounds"): "fmriprep"}

    def check_config(self, cfg: dict[str, Any], path: str | os.PathLike | None) -> None:
        super().check_config(cfg, path)
        ds = cfg["dataset"]
        if ds["units"] == "parcels" and not ds.get("atlas"):
            raise ConfigError(path, "dataset.atlas", "is required with dataset.units 'parcels'.")
        if ds.get("atlas") and not Path(ds["atlas"]).exists():
            raise ConfigError(path, "dataset.atlas", f"the file {ds['atlas']} does not exist.")


class ElectroKind(DatasetKind):
    """Base of the MEG/EEG/sEEG kinds: word-locked epochs of continuous recordings."""

    modality = "electro"
    #: How the word table's ``sentence`` column was made, when not from the data (said in split errors).
    sentence_rule: ClassVar[str | None] = None

    def check_config(self, cfg: dict[str, Any], path: str | os.PathLike | None) -> None:
        super().check_config(cfg, path)
        ep = cfg["electrophysiology"]
        target = ep["target_feature_set"] or cfg["simulation"]["planted_feature_set"]
        if target not in cfg["feature_sets"]:
            raise ConfigError(path, "electrophysiology.target_feature_set",
                              f"{target!r} is not a feature set; defined: {list(cfg['feature_sets'])}.")
        if ep["tmax"] <= ep["tmin"]:
            raise ConfigError(path, "electrophysiology.tmax", f"must exceed tmin ({ep['tmin']}).")
        if ep["baseline"] is not None and ep["baseline"][1] <= ep["baseline"][0]:
            raise ConfigError(path, "electrophysiology.baseline", "the interval's end must exceed its start.")

    def task(self, cfg: dict[str, Any]) -> str:
        """``"seeg"`` (intracranial: word classification) or ``"meeg"`` (MEG/EEG: segment identification)."""
        return "seeg" if cfg["dataset"].get("datatype") == "ieeg" else "meeg"

    def recordings(self, cfg: dict[str, Any], subject: str, raw_dir: str | os.PathLike | None,
                   ) -> list[tuple[int, Path, Path | None, Any]]:
        """(run, file, events TSV or None, reader returning an ``mne.io.Raw``) of each recording of ``subject``."""
        raise self._unsupported("recordings")

    def check_recordings(self, cfg: dict[str, Any], subject: str, runs: list[int], events: pd.DataFrame,
                         events_path: str | os.PathLike, raw_dir: str | os.PathLike | None) -> None:
        """Raise naming the recording of a run of the word table that ``subject`` lacks.

        Without it a missing file would silently drop that run's words from
        the subject's epochs. The default compares the run numbers.
        """
        import numpy as np

        expected = sorted(int(r) for r in np.unique(events["run"]))
        missing = [r for r in expected if r not in runs]
        if missing:
            path = Path(raw_dir or ".") / subject / f"run-{missing[0]}_raw.fif"
            raise InputFileError(path, f"this recording does not exist, but run {missing[0]} has words in "
                                       f"{events_path} (runs recorded: {sorted(runs)}; runs of the word table: "
                                       f"{expected}); without it the run's words would have no epochs.")

    def preflight(self, cfg: dict[str, Any]) -> Preflight:
        """Subjects and the word table; recorded (not simulated) data: every subject's recordings of the
        word table's runs are there (:meth:`check_recordings`; no recording is read)."""
        subjects = selected_subjects(cfg)
        events, inputs = self.events(cfg)
        if not self.simulated:
            for subject in subjects:
                recordings = self.recordings(cfg, subject, None)
                for _, path, _, _ in recordings:
                    if not Path(path).is_file():
                        raise InputFileError(path, "this recording does not exist.")
                self.check_recordings(cfg, subject, [r for r, *_ in recordings], events,
                                      inputs[0] if inputs else "the word table", None)
        runs = sorted(int(r) for r in events["run"].unique())
        return Preflight([f"{count(len(subjects), 'subject')}, {count(len(runs), 'run')}, {len(events)} words"],
                         events=events)


@dataclass
class ImageData:
    """What an ``"images"`` kind gives the decoders (written to ``images.h5`` and ``betas/<subject>.h5``).

    Attributes
    ----------
    images : ndarray of shape (n_images, height, width, 3), uint8
    captions : list of str, length n_images
    tokens : ndarray of shape (n_images, n_tokens, dim)
        Token embeddings of the images (the decoders' token target).
    pooled : ndarray of shape (n_images, dim)
        Pooled image embeddings (the decoders' image target).
    image_ids : ndarray of shape (n_images,), int
    test : ndarray of shape (n_images,), bool
        Held-out images.
    betas : dict
        Subject label -> (betas (n_trials, n_voxels), image id of each trial, ROI label of each voxel).
    targets : dict of str to ndarray
        Further target spaces extracted from the images (``decoding.targets``:
        e.g. ``vae_latent`` (n_images, 4, h, w), ``depth`` (n_images, size, size)),
        each decoded and scored in its own space.
    geometry : dict
        Subject label -> :class:`brainalign.io.VoxelGeometry` of its voxels (for maps on the brain); a
        subject without one gets no NIfTI map.
    """

    images: np.ndarray
    captions: list[str]
    tokens: np.ndarray
    pooled: np.ndarray
    image_ids: np.ndarray
    test: np.ndarray
    betas: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]
    targets: dict[str, np.ndarray] = field(default_factory=dict)
    geometry: dict[str, Any] = field(default_factory=dict)


class ImagesKind(DatasetKind):
    """Base of the image-fMRI kinds: images with captions and embeddings, and per-trial betas."""

    modality = "images"

    def check_config(self, cfg: dict[str, Any], path: str | os.PathLike | None) -> None:
        """The kind's fields, and the inputs each decoding generator reads (never a silent stand-in)."""
        super().check_config(cfg, path)
        dec = cfg.get("decoding", {})
        bank = dec.get("selectivity_bank")
        if bank and not Path(bank).is_dir():
            raise ConfigError(path, "decoding.selectivity_bank", f"the folder {bank} does not exist.")
        bc, targets = dec.get("brain_captioning", {}), dec.get("targets", {})
        depth = targets.get("depth")
        if depth is not None and (depth.get("model_path") is None) == (depth.get("files") is None):
            raise ConfigError(path, "decoding.targets.depth.model_path",
                              "give exactly one of model_path (a local depth model) and files (an HDF5 of your "
                              "depth maps: image_id, depth).")
        if bc.get("kind", "none") == "none":
            return
        if not bc.get("model_path"):
            raise ConfigError(path, "decoding.brain_captioning.model_path",
                              "is required with kind 'img2img': a local Stable Diffusion img2img folder.")
        if "vae_latent" not in targets:
            raise ConfigError(path, "decoding.targets.vae_latent.model_path",
                              "is required by decoding.brain_captioning: img2img starts from the predicted VAE "
                              f"latent; extract it with the pipeline's own VAE ({bc['model_path']}/vae).")
        if bc.get("controlnet_path") and "depth" not in targets:
            raise ConfigError(path, "decoding.targets.depth.model_path",
                              "is required by decoding.brain_captioning.controlnet_path: ControlNet-depth reads "
                              "the predicted depth map (a local depth model, e.g. DPT).")
        if dec.get("captioner", {}).get("kind") == "none":
            raise ConfigError(path, "decoding.captioner.kind",
                              "is 'none', but decoding.brain_captioning prompts img2img with the decoded caption.")

    def image_data(self, cfg: dict[str, Any]) -> ImageData:
        """The images, their captions and embeddings, and every subject's betas."""
        raise self._unsupported("images")

    def embed_bank(self, cfg: dict[str, Any], folder: str | os.PathLike) -> Any:
        """The images of ``folder`` embedded like the dataset's own (pooled and tokens): an
        :class:`brainalign.io.ImageBank` (``decoding.selectivity_bank``)."""
        raise self._unsupported("an image bank")

    @staticmethod
    def extract_targets(cfg: dict[str, Any], images: np.ndarray, captions: list[str] | None,
                        names: tuple[str, ...] | None = None, image_ids: Any = None) -> dict[str, np.ndarray]:
        """The ``decoding.targets`` spaces (all, or ``names``) extracted from the full-size ``images`` with their
        local weights on the workflow's device (:func:`brainalign.features.image_targets.extract_targets`), or,
        for ``depth`` with ``files``, read from the user's maps of ``image_ids``."""
        from ..backend.device import resolve_device
        from ..features.image_targets import TARGETS, depth_from_file, extract_targets

        spec = cfg.get("decoding", {}).get("targets", {})
        if names is not None:
            spec = {name: spec[name] for name in names if name in spec}
        spec = {name: {k: v for k, v in options.items() if v is not None} for name, options in spec.items()}
        files = spec.get("depth", {}).pop("files", None)
        if files is not None:
            del spec["depth"]
        out = extract_targets(spec, images, captions, device=resolve_device(cfg), progress=True) if spec else {}
        if files is not None:
            out["depth"] = depth_from_file(files, image_ids, cfg["decoding"]["targets"]["depth"]["size"])
        return {name: out[name] for name in TARGETS if name in out}


class ReadingKind(DatasetKind):
    """Base of the reading-time kinds: words in reading order with a mean reading time each."""

    modality = "reading"
    data_field = "dataset.data_dir"

    def reading_words(self, cfg: dict[str, Any]) -> pd.DataFrame:
        """One row per word in reading order: ``story``, ``zone``, ``word``, ``rt`` (ms),
        ``sentence_initial``, ``position``, ``length``."""
        raise self._unsupported("reading times")

    def builtin_predictor(self, cfg: dict[str, Any], words: pd.DataFrame, name: str) -> pd.Series:
        """A per-word predictor (bits) the dataset ships, aligned to :meth:`reading_words`."""
        raise self._unsupported(f"a shipped predictor {name!r}")

    def preflight(self, cfg: dict[str, Any]) -> Preflight:
        """The words, and every shipped predictor of ``reading.builtin_predictors``, read as the stages read them."""
        words = self.reading_words(cfg)
        for name in cfg.get("reading", {}).get("builtin_predictors", []):
            self.builtin_predictor(cfg, words, name)
        stories = words["story"].nunique() if "story" in words else 1
        return Preflight([f"{len(words)} words in {count(stories, 'story')}"])


class PlantedSimulation(DatasetKind):
    """Base of the kinds brainalign simulates from a planted layer of a feature set."""

    simulated = True

    def check_config(self, cfg: dict[str, Any], path: str | os.PathLike | None) -> None:
        super().check_config(cfg, path)
        sets = cfg["feature_sets"]
        planted = cfg["simulation"]["planted_feature_set"]
        if planted not in sets:
            raise ConfigError(path, "simulation.planted_feature_set",
                              f"{planted!r} is not a feature set; defined: {list(sets)}.")
        if sets[planted]["kind"] != "transformer":
            raise ConfigError(path, "simulation.planted_feature_set", f"{planted!r} must be a transformer.")
        layers = sets[planted]["layers"]
        layer = cfg["simulation"]["planted_layer"]
        if layers != "all" and layer not in [str(k) for k in layers]:
            raise ConfigError(path, "simulation.planted_layer",
                              f"layer {layer!r} is not among feature_sets.{planted}.layers {layers}.")

    def subjects(self, cfg: dict[str, Any]) -> list[str]:
        return [f"sub-{k + 1:02d}" for k in range(cfg["simulation"]["n_subjects"])]

    def preflight(self, cfg: dict[str, Any]) -> Preflight:
        """fMRI: the volumes of the generated story (``simulation.n_words``, ``simulation.tr``), for every subject."""
        if self.modality not in FMRI_MODALITIES:
            return super().preflight(cfg)
        return self._clock_preflight(cfg, field="simulation.n_words", source="simulation.n_words and simulation.tr",
                                     events_path=None, generated=True)

    def planted_credit(self, cfg: dict[str, Any]) -> str:
        sim = cfg["simulation"]
        return f"layer {sim['planted_layer']} of {sim['planted_feature_set']} planted"


def selected_subjects(cfg: dict[str, Any]) -> list[str]:
    """The subjects a config analyses: ``dataset.subjects`` among the kind's (excluded ones are flagged later)."""
    available = get_kind(cfg).subjects(cfg)
    chosen = cfg["dataset"]["subjects"]
    if chosen == "all":
        return available
    unknown = [s for s in chosen if s not in available]
    if unknown:
        raise ConfigError(None, "dataset.subjects", f"unknown subject(s) {unknown}; available: {available}.")
    return list(chosen)


def volume_kinds() -> list[str]:
    """Names of the registered kinds of the ``"volume"`` modality."""
    return [name for name in KINDS if get_kind(name).modality == "volume"]


def register_kind(name: str, target: str | type[DatasetKind]) -> None:
    """Add (or replace) a dataset kind: ``"module:Class"`` or the class itself.

    Its :attr:`~DatasetKind.schema` fragment is added to the config schema,
    and ``name`` to the values ``dataset.kind`` accepts.
    """
    global _generation
    KINDS[name] = target if isinstance(target, str) else f"{target.__module__}:{target.__qualname__}"
    _instances.pop(name, None)
    if not isinstance(target, str):
        _instances[name] = target()
    _generation += 1  # the config schema is composed again (brainalign.config)


def kind_names() -> list[str]:
    """Registered kind names, in registration order (built-in, then installed packages', then registered)."""
    _load_entry_points()
    return list(KINDS)


def get_kind(kind: str | dict[str, Any]) -> DatasetKind:
    """The :class:`DatasetKind` named ``kind`` (a name, or a config whose ``dataset.kind`` names it)."""
    name = kind["dataset"]["kind"] if isinstance(kind, dict) else kind
    _load_entry_points()
    if name not in _instances:
        if name not in KINDS:
            raise ConfigError(None, "dataset.kind", f"unknown kind {name!r}; known: {', '.join(KINDS)}.")
        module, _, cls = KINDS[name].partition(":")
        instance = getattr(importlib.import_module(module), cls)()
        if instance.name != name or instance.modality not in MODALITIES:
            raise BrainalignError(f"{KINDS[name]} is not the dataset kind {name!r} (its name is "
                                  f"{instance.name!r}, its modality {instance.modality!r}).")
        _instances[name] = instance
    return _instances[name]


def compose_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` (the config schema, modified in place) with every registered kind.

    ``dataset.kind`` accepts the registered names; each kind's
    :attr:`~DatasetKind.schema` properties are added to the ``dataset``
    section (a field two kinds define must be defined alike).
    """
    dataset = schema["properties"]["dataset"]
    dataset["properties"]["kind"]["enum"] = kind_names()
    for name in kind_names():
        for key, fragment in get_kind(name).schema.items():
            known = dataset["properties"].get(key)
            if known is not None and known != fragment:
                raise BrainalignError(f"dataset.{key} of kind {name!r} differs from the field of that name "
                                      "another kind or the config schema defines.")
            dataset["properties"][key] = fragment
    return schema
