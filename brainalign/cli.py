"""The ``brainalign`` command line: one subcommand per workflow stage.

Thin by design: each subcommand parses its arguments, loads and validates the
config, and calls one function of :mod:`brainalign.pipeline`. Bad input exits
with status 2 and one message that names the file and the field.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from ._validation import BrainalignError, ConfigError, InputFileError

__all__ = ["main"]


def _config(args: argparse.Namespace) -> dict:
    from .config import load_config

    if not args.config.exists():
        raise InputFileError(args.config, "config file (--config) does not exist.")
    return load_config(args.config)


def _version() -> str:
    from . import __version__

    return __version__


def _cmd_validate(args: argparse.Namespace) -> None:
    from .backend.device import check_device
    from .pipeline.preflight import preflight

    cfg = _config(args)
    # The device is checked on this machine: validate a GPU config on (or like) the node that will run it.
    devices = [check_device(cfg["device"], field="device", path=args.config)]
    if cfg.get("language", {}).get("device") is not None:
        devices.append(check_device(cfg["language"]["device"], field="language.device", path=args.config))
    checked = preflight(cfg, args.config)
    print(f"{args.config}: valid (dataset {cfg['dataset']['name']!r}; {'; '.join(checked)}; "
          f"device {', '.join(dict.fromkeys(devices))})")


def _cmd_init(args: argparse.Namespace) -> None:
    from .io.atomic import write_text
    from .datasets.templates import config_template

    text = config_template(args.kind)
    if args.out is None:
        sys.stdout.write(text)
        return
    if args.out.exists() and not args.force:
        raise InputFileError(args.out, "already exists; give another path, or --force to overwrite it.")
    write_text(args.out, text)
    print(f"{args.out}: {args.kind} config template written; edit it, then "
          f"`brainalign validate --config {args.out}`.", file=sys.stderr)


def _cmd_run(args: argparse.Namespace) -> int:
    import os
    import subprocess

    cfg = _config(args)  # refuse a bad config here, in brainalign's words, before Snakemake starts
    snakefile = args.snakefile
    if snakefile is None:
        snakefile = next((p for p in (Path("Snakefile"), Path(__file__).resolve().parent.parent / "Snakefile")
                          if p.is_file()), None)
        if snakefile is None:
            raise InputFileError(Path("Snakefile"), "no Snakefile here or beside the brainalign package; "
                                 "give the workflow's Snakefile with --snakefile.")
    rest = list(args.snakemake_args)
    if "--" in rest:  # the conventional end of brainalign's own options, wherever it stands: not Snakemake's
        rest.remove("--")
    if any(a == "--configfile" or a.startswith("--configfile=") or a == "--configfiles" for a in rest):
        raise InputFileError(args.config, "`brainalign run` gives the config to the workflow itself; do not "
                             "add --configfile (Snakemake would evaluate that file with its own loader).")
    setting = f"config_path={args.config.resolve()}"
    if "--config" in rest:  # one --config option: Snakemake keeps only the last one given
        rest.insert(rest.index("--config") + 1, setting)
    else:
        rest += ["--config", setting]
    cores = [] if any(a in ("-c", "--cores", "-j", "--jobs") or a.startswith(("--cores=", "--jobs="))
                      for a in rest) else ["--cores", str(cfg["threads"])]
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(snakefile), *cores, *rest]
    print("brainalign: " + " ".join(command), file=sys.stderr)
    env = dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    return subprocess.run(command, check=False, env=env).returncode


def _cmd_resolved_config(args: argparse.Namespace) -> None:
    from .pipeline.workflow_lock import write_claimed_config

    write_claimed_config(args.claim, args.sha256, args.out)


def _cmd_subjects(args: argparse.Namespace) -> None:
    from .pipeline.stages import dataset_subjects

    print("\n".join(dataset_subjects(_config(args))))


def _cmd_stimuli(args: argparse.Namespace) -> None:
    from .pipeline.stages import run_stimuli

    run_stimuli(_config(args), args.out)


def _cmd_features(args: argparse.Namespace) -> None:
    from .pipeline.stages import run_features

    run_features(_config(args), args.events, args.feature_set, args.out, args.threads,
                 progress=not args.no_progress)


def _cmd_simulate(args: argparse.Namespace) -> None:
    from .pipeline.stages import run_simulate

    run_simulate(_config(args), args.events, args.features, args.out)


def _cmd_simulate_bids(args: argparse.Namespace) -> None:
    from .pipeline.volumes import run_simulate_bids

    run_simulate_bids(_config(args), args.events, args.features, args.out)


def _cmd_mask(args: argparse.Namespace) -> None:
    from .pipeline.volumes import run_mask

    run_mask(_config(args), args.out)


def _cmd_responses(args: argparse.Namespace) -> None:
    from .pipeline.stages import is_volume_dataset, run_responses

    cfg = _config(args)
    if is_volume_dataset(cfg):
        from .pipeline.volumes import run_volume_responses

        if args.mask is None:
            raise BrainalignError("volume datasets need the analysis mask (--mask).")
        run_volume_responses(cfg, args.subject, args.mask, args.out)
    else:
        run_responses(cfg, args.subject, args.out, args.raw)


def _cmd_design(args: argparse.Namespace) -> None:
    from .pipeline.stages import run_design

    run_design(_config(args), args.events, args.features, args.out)


def _cmd_score(args: argparse.Namespace) -> None:
    from .pipeline.stages import run_score

    if args.out_units is not None:
        from .pipeline.volumes import run_volume_score

        run_volume_score(_config(args), args.design, args.responses, args.out, args.out_units, args.threads,
                         progress=not args.no_progress)
    else:
        run_score(_config(args), args.design, args.responses, args.out, args.threads, progress=not args.no_progress)


def _cmd_ceiling(args: argparse.Namespace) -> None:
    from .pipeline.stages import run_ceiling

    if args.out_units is not None:
        from .pipeline.volumes import run_volume_ceiling

        run_volume_ceiling(_config(args), args.responses, args.out, args.out_units)
    else:
        run_ceiling(_config(args), args.responses, args.out)


def _cmd_maps(args: argparse.Namespace) -> None:
    from .pipeline.volumes import run_maps

    run_maps(_config(args), args.scores, args.ceiling, args.out_dir)


def _cmd_partition(args: argparse.Namespace) -> None:
    from .pipeline.stages import run_partition

    run_partition(_config(args), args.best_layer, args.model_design, args.baseline_design,
                  args.responses, args.out, args.threads)


def _cmd_aggregate(args: argparse.Namespace) -> None:
    from .pipeline.aggregate import run_aggregate

    run_aggregate(_config(args), args.scores, args.ceiling, args.out_dir)


def _cmd_simulate_electro(args: argparse.Namespace) -> None:
    from .pipeline.electro import run_simulate_electro

    run_simulate_electro(_config(args), args.events, args.features, args.out)


def _cmd_epochs(args: argparse.Namespace) -> None:
    from .pipeline.electro import run_epochs

    run_epochs(_config(args), args.subject, args.events, args.out, raw_dir=args.raw_dir)


def _torch_threads(threads: int) -> None:
    import torch

    # A fixed thread count keeps float reductions, and so the trained weights, bit-identical.
    torch.set_num_threads(max(1, threads))


def _cmd_contrastive(args: argparse.Namespace) -> None:
    from .pipeline.electro import run_contrastive

    _torch_threads(args.threads)
    run_contrastive(_config(args), args.epochs, args.events, args.features, args.out_dir,
                    progress=not args.no_progress)


def _cmd_word_decoding(args: argparse.Namespace) -> None:
    from .pipeline.electro import run_word_decoding

    _torch_threads(args.threads)
    run_word_decoding(_config(args), args.epochs, args.events, args.out_dir, progress=not args.no_progress)


def _cmd_electro_report(args: argparse.Namespace) -> None:
    from .report.electro import run_electro_report

    run_electro_report(_config(args), args.decoding_dir, args.out)


def _cmd_decoding_data(args: argparse.Namespace) -> None:
    from .pipeline.decoding import run_decoding_data

    run_decoding_data(_config(args), args.out_dir)


def _cmd_captioner(args: argparse.Namespace) -> None:
    from .pipeline.decoding import run_captioner

    _torch_threads(args.threads)
    run_captioner(_config(args), args.images, args.out)


def _cmd_decode(args: argparse.Namespace) -> None:
    from .pipeline.decoding import run_decode

    _torch_threads(args.threads)
    run_decode(_config(args), args.subject, args.images, args.betas, args.out_dir, args.captioner,
               progress=not args.no_progress)


def _cmd_decoding_report(args: argparse.Namespace) -> None:
    from .pipeline.decoding import run_decoding_report

    run_decoding_report(_config(args), args.decode_dirs, args.out_scores, args.out)


def _cmd_report(args: argparse.Namespace) -> None:
    from .report.html import run_report

    run_report(_config(args), args.results_dir, args.out, args.figures_dir)


def _cmd_reading_words(args: argparse.Namespace) -> None:
    from .pipeline.reading import run_reading_words

    run_reading_words(_config(args), args.out)


def _cmd_train_lm(args: argparse.Namespace) -> None:
    from .pipeline.reading import run_train_lm

    run_train_lm(_config(args), args.model, args.out, args.history, args.threads, progress=not args.no_progress)


def _cmd_ngram_lm(args: argparse.Namespace) -> None:
    from .pipeline.reading import run_ngram_lm

    run_ngram_lm(_config(args), args.words, args.out_perplexity, args.out_surprisal)


def _cmd_surprisal(args: argparse.Namespace) -> None:
    from .pipeline.reading import run_surprisal

    run_surprisal(_config(args), args.model, args.words, args.out, args.checkpoint, args.threads,
                  progress=not args.no_progress)


def _cmd_verbatim(args: argparse.Namespace) -> None:
    from .pipeline.reading import run_verbatim

    run_verbatim(_config(args), args.model, args.out, args.checkpoint, args.threads, progress=not args.no_progress)


def _cmd_reading_scores(args: argparse.Namespace) -> None:
    from .pipeline.reading import run_reading_scores

    run_reading_scores(_config(args), args.words, args.surprisal, args.history, args.ngram, args.out_dir)


def _cmd_reading_report(args: argparse.Namespace) -> None:
    from .report.reading import write_reading_report

    write_reading_report(_config(args), args.results_dir, args.out, args.figures_dir)


def _cmd_readme(args: argparse.Namespace) -> None:
    from .report.readme import update_readme

    changed = update_readme(args.readme, args.results_dir, args.section, check=args.check)
    if args.check and changed:
        raise BrainalignError(f"{args.readme}: section {args.section!r} is out of date with "
                              f"{args.results_dir}; run without --check to update it.")


log = logging.getLogger("brainalign")

#: Commands a person runs and reads (their output is the answer): no start and end lines.
INTERACTIVE_COMMANDS = frozenset({"validate", "init", "run", "subjects", "readme"})

#: Help of the options many commands share (the workflow's rules pass them; a command's own help wins).
COMMON_HELP = {
    "--out": "output file, written atomically (temporary file, then rename)",
    "--out-dir": "output folder",
    "--events": "word events table (TSV, from `brainalign stimuli`)",
    "--features": "word-level features (HDF5, from `brainalign features`)",
    "--feature-set": "name of a feature set of the config (feature_sets)",
    "--threads": "BLAS and torch threads of this step (default 1: the workflow runs steps side by side)",
    "--no-progress": "no progress bars (the workflow's logs)",
    "--subject": "subject label (`brainalign subjects --config ...` lists them)",
    "--design": "design matrix (HDF5, from `brainalign design`)",
    "--responses": "cleaned responses (HDF5, from `brainalign responses`), one file per subject",
    "--scores": "per-subject score tables (CSV, from `brainalign score`)",
    "--ceiling": "noise-ceiling table (CSV, from `brainalign ceiling`)",
    "--best-layer": "nested best layer per subject and ROI (CSV, from `brainalign aggregate`)",
    "--model-design": "design matrix of the model's best layer (HDF5)",
    "--baseline-design": "design matrix of the word-rate baseline (HDF5)",
    "--epochs": "word-locked epochs (HDF5, from `brainalign epochs`), one file per subject",
    "--decoding-dir": "folder of the decoding step's outputs",
    "--images": "images.h5 (from `brainalign decoding-data`)",
    "--betas": "one subject's betas (HDF5, from `brainalign decoding-data`)",
    "--captioner": "folder of the trained template captioner (from `brainalign captioner`)",
    "--decode-dirs": "the subjects' decode folders",
    "--out-scores": "the concatenated score table (CSV)",
    "--results-dir": "the dataset's results folder (results/<name>)",
    "--figures-dir": "folder the report's figures are written to",
    "--words": "per-word table (CSV, from `brainalign reading-words`)",
    "--out-perplexity": "held-out perplexity table (CSV)",
    "--out-surprisal": "per-word surprisal table (CSV)",
    "--readme": "the README to update",
    "--section": "name of the README section to regenerate",
    "--check": "only check that the section is up to date (exit 1 if not)",
    "--claim": "the workflow's claim file of the dataset name",
    "--sha256": "SHA-256 of the config the claim was made for",
}


def _fill_help(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Give every option of every command a help text: its own, else :data:`COMMON_HELP`'s."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _fill_help(sub)
        elif action.help is None and action.option_strings:
            action.help = COMMON_HELP.get(action.option_strings[-1])
    return parser


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="brainalign", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument("-V", "--version", action="version", version=f"brainalign {_version()}",
                        help="print brainalign's version and exit")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, func, help_: str, config: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        if config:
            p.add_argument("--config", required=True, type=Path, help="dataset config (YAML)")
        p.set_defaults(func=func)
        return p

    add("validate", _cmd_validate, "check a dataset config and its data before a run: the schema, the device, the "
        "data files, the samples per run against the cross-validation folds, the mask and atlas")
    from .datasets.templates import template_kinds

    p = add("init", _cmd_init, "write a commented config template of a dataset kind", config=False)
    p.add_argument("kind", metavar="KIND", help="dataset kind: " + ", ".join(template_kinds()))
    p.add_argument("-o", "--out", type=Path, default=None,
                   help="file to write, atomically (default: print the template to stdout)")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    p = add("run", _cmd_run, "run the workflow on a config, read as plain data (never by Snakemake's "
            "own config loader, which evaluates YTE templates)", config=False)
    p.add_argument("config", type=Path, help="dataset config (YAML)")
    p.add_argument("--snakefile", type=Path, default=None,
                   help="the workflow (default: ./Snakefile, else the one beside the brainalign package)")
    p.add_argument("snakemake_args", nargs=argparse.REMAINDER,
                   help="passed on to snakemake (e.g. -n, --cores 4, --profile workflows/profiles/slurm)")
    p = add("resolved-config", _cmd_resolved_config, "write results/<name>/config.yaml from the workflow's "
            "claim of the dataset name (a workflow step)", config=False)
    p.add_argument("--claim", required=True, type=Path)
    p.add_argument("--sha256", required=True)
    p.add_argument("--out", required=True, type=Path)
    add("subjects", _cmd_subjects, "list the subjects a config analyses")
    p = add("stimuli", _cmd_stimuli, "write the word events table (TSV)")
    p.add_argument("--out", required=True, type=Path)
    p = add("features", _cmd_features, "extract one feature set at the word level (HDF5)")
    p.add_argument("--events", required=True, type=Path)
    p.add_argument("--feature-set", required=True)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-progress", action="store_true")
    p = add("simulate", _cmd_simulate, "simulate raw responses of every subject (simulated datasets)")
    p.add_argument("--events", required=True, type=Path)
    p.add_argument("--features", required=True, type=Path)
    p.add_argument("--out", required=True, nargs="+", type=Path, help="one file per subject")
    p = add("simulate-bids", _cmd_simulate_bids, "write the simulated BIDS + fMRIPrep dataset (a folder)")
    p.add_argument("--events", required=True, type=Path)
    p.add_argument("--features", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p = add("mask", _cmd_mask, "the analysis mask of a BIDS dataset (NIfTI)")
    p.add_argument("--out", required=True, type=Path)
    p = add("responses", _cmd_responses, "load, check and clean one subject's responses (HDF5)")
    p.add_argument("--subject", required=True)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--raw", type=Path, default=None, help="raw responses (simulated datasets)")
    p.add_argument("--mask", type=Path, default=None, help="analysis mask (BIDS datasets)")
    p = add("design", _cmd_design, "convolve word features onto the volume grid (HDF5)")
    p.add_argument("--events", required=True, type=Path)
    p.add_argument("--features", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p = add("score", _cmd_score, "cross-validated ridge scores of one feature set (CSV)")
    p.add_argument("--design", required=True, type=Path)
    p.add_argument("--responses", required=True, nargs="+", type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--out-units", type=Path, default=None,
                   help="per-unit scores (HDF5; volume datasets): the CSV then holds ROI means")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-progress", action="store_true")
    p = add("ceiling", _cmd_ceiling, "leave-one-subject-out ISC ceiling (CSV)")
    p.add_argument("--responses", required=True, nargs="+", type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--out-units", type=Path, default=None, help="per-unit ceilings (HDF5; volume datasets)")
    p = add("maps", _cmd_maps, "NIfTI maps of r, normalized r and FDR significance (volume datasets)")
    p.add_argument("--scores", required=True, type=Path, help="per-unit scores (HDF5)")
    p.add_argument("--ceiling", required=True, type=Path, help="per-unit ceilings (HDF5)")
    p.add_argument("--out-dir", required=True, type=Path)
    p = add("aggregate", _cmd_aggregate, "tidy score table, layer curves, nested best layer, paired tests")
    p.add_argument("--scores", required=True, nargs="+", type=Path)
    p.add_argument("--ceiling", required=True, type=Path)
    p.add_argument("--out-dir", required=True, type=Path)
    p = add("partition", _cmd_partition, "variance partitioning: model (nested best layer) vs word rate (CSV)")
    p.add_argument("--best-layer", required=True, type=Path)
    p.add_argument("--model-design", required=True, type=Path)
    p.add_argument("--baseline-design", required=True, type=Path)
    p.add_argument("--responses", required=True, nargs="+", type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--threads", type=int, default=1)
    p = add("simulate-electro", _cmd_simulate_electro, "simulate MEG/EEG or sEEG recordings (FIF per subject and run)")
    p.add_argument("--events", required=True, type=Path)
    p.add_argument("--features", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path, help="folder of <subject>/run-<k>_raw.fif")
    p = add("epochs", _cmd_epochs, "preprocess one subject's MEG/EEG/sEEG recordings into word-locked epochs (HDF5)")
    p.add_argument("--subject", required=True)
    p.add_argument("--events", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--raw-dir", type=Path, default=None, help="simulated recordings (simulated datasets)")
    p = add("contrastive", _cmd_contrastive, "contrastive brain module and top-k segment identification (MEG/EEG)")
    p.add_argument("--epochs", required=True, nargs="+", type=Path)
    p.add_argument("--events", required=True, type=Path)
    p.add_argument("--features", required=True, type=Path)
    p.add_argument("--out-dir", required=True, type=Path)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-progress", action="store_true")
    p = add("word-decoding", _cmd_word_decoding, "Du-IN-style word classification (sEEG)")
    p.add_argument("--epochs", required=True, nargs="+", type=Path)
    p.add_argument("--events", required=True, type=Path)
    p.add_argument("--out-dir", required=True, type=Path)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-progress", action="store_true")
    p = add("electro-report", _cmd_electro_report, "scores table, top-k curve, confusion matrix and HTML report")
    p.add_argument("--decoding-dir", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p = add("decoding-data", _cmd_decoding_data, "images.h5 and betas/<subject>.h5 (simulated, or read from NSD)")
    p.add_argument("--out-dir", required=True, type=Path)
    p = add("captioner", _cmd_captioner, "train the template captioner on the training images (simulated data)")
    p.add_argument("--images", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--threads", type=int, default=1)
    p = add("decode", _cmd_decode, "decode one subject: retrieval, captions, reconstructions, ROI captions")
    p.add_argument("--subject", required=True)
    p.add_argument("--images", required=True, type=Path)
    p.add_argument("--betas", required=True, type=Path)
    p.add_argument("--captioner", type=Path, default=None)
    p.add_argument("--out-dir", required=True, type=Path)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-progress", action="store_true")
    p = add("decoding-report", _cmd_decoding_report, "decoding scores table and HTML report")
    p.add_argument("--decode-dirs", required=True, nargs="+", type=Path)
    p.add_argument("--out-scores", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p = add("report", _cmd_report, "plots and the HTML report")
    p.add_argument("--results-dir", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--figures-dir", required=True, type=Path)
    p = add("reading-words", _cmd_reading_words, "reading modality: the word table with reading times and "
            "the dataset's own predictors (CSV)")
    p.add_argument("--out", required=True, type=Path)
    p = add("train-lm", _cmd_train_lm, "train one of language.models on language.corpus (safetensors checkpoint "
            "and training curve)")
    p.add_argument("--model", required=True, help="a name under language.models")
    p.add_argument("--out", required=True, type=Path, help="checkpoint (.safetensors)")
    p.add_argument("--history", required=True, type=Path, help="training curve (CSV)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-progress", action="store_true")
    p = add("ngram-lm", _cmd_ngram_lm, "the corpus n-gram baseline: held-out perplexity and per-word surprisal")
    p.add_argument("--words", required=True, type=Path)
    p.add_argument("--out-perplexity", required=True, type=Path)
    p.add_argument("--out-surprisal", required=True, type=Path)
    p = add("surprisal", _cmd_surprisal, "per-word surprisal and entropy (bits) of a trained model or a local "
            "Hugging Face causal LM (CSV)")
    p.add_argument("--model", required=True, help="a name under language.models or language.hf_models")
    p.add_argument("--words", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--checkpoint", type=Path, default=None, help="a train-lm checkpoint (trained models)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-progress", action="store_true")
    p = add("verbatim", _cmd_verbatim, "repeat surprisal of the verbatim-memory paradigm for one language model (CSV)")
    p.add_argument("--model", required=True, help="a name under language.models or language.hf_models")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--checkpoint", type=Path, default=None, help="a train-lm checkpoint (trained models)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-progress", action="store_true")
    p = add("reading-scores", _cmd_reading_scores, "Futrell2018 and regression-gain scores of every predictor")
    p.add_argument("--words", required=True, type=Path)
    p.add_argument("--surprisal", nargs="*", default=[], type=Path, help="surprisal/<name>.csv files")
    p.add_argument("--history", nargs="*", default=[], type=Path, help="lm/<name>_history.csv files")
    p.add_argument("--ngram", type=Path, default=None, help="lm/ngram.csv")
    p.add_argument("--out-dir", required=True, type=Path)
    p = add("reading-report", _cmd_reading_report, "plots and the HTML report of a reading-time dataset")
    p.add_argument("--results-dir", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--figures-dir", required=True, type=Path)
    p = add("readme", _cmd_readme, "regenerate (or --check) a results section of the README", config=False)
    p.add_argument("--readme", type=Path, default=Path("README.md"))
    p.add_argument("--results-dir", required=True, type=Path)
    p.add_argument("--section", required=True)
    p.add_argument("--check", action="store_true")
    return _fill_help(parser)


def _os_error_message(err: OSError) -> str:
    """``<path>: <what went wrong> (<errno name>)`` for an operating-system error while reading or writing."""
    import errno as errno_names

    name = errno_names.errorcode.get(err.errno, "") if err.errno is not None else ""
    hints = {
        errno_names.ENOSPC: "the disk is full; free space and rerun (nothing was left half-written)",
        errno_names.EROFS: "the file system is read-only; write the results elsewhere (snakemake -d)",
        errno_names.EFBIG: "the file exceeds the file-size limit (ulimit -f)",
        errno_names.EDQUOT: "the disk quota is exceeded",
        errno_names.ENOTDIR: "a parent of this path is a file, not a folder",
        errno_names.EEXIST: "a file stands where a folder is needed",
        errno_names.EISDIR: "this output path is a folder; remove or rename it",
        errno_names.EACCES: "permission denied",
    }
    what = hints.get(err.errno, err.strerror or str(err))
    path = err.filename if err.filename is not None else "<unknown path>"
    return f"{path}: {what}" + (f" ({name})" if name else "")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``brainalign`` command."""
    import signal

    # Beyond the file-size limit the kernel sends SIGXFSZ, which kills the
    # process; ignored, the write fails with EFBIG and gets a clear error.
    if hasattr(signal, "SIGXFSZ"):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s brainalign: %(message)s", stream=sys.stderr)
    try:
        # Pin BLAS threads in every stage (the config's `threads` where a stage
        # takes it): results are then bit-identical whatever the machine's cores.
        from .backend.threads import pin_threads

        pin_threads(getattr(args, "threads", 1))
        # One line at the start and the end of every workflow step: no job log of a good run is empty.
        announce = args.command not in INTERACTIVE_COMMANDS
        started = time.perf_counter()
        if announce:
            config = getattr(args, "config", None)
            log.info("%s started%s", args.command, f" (config {config})" if config else "")
        status = args.func(args)
        if announce:
            log.info("%s done in %.1f s", args.command, time.perf_counter() - started)
        if isinstance(status, int):
            return status
    except OSError as err:
        # Disk faults (read-only file system, disk full, file-size limit, a parent
        # that is a file, an output that is a folder): one line naming the path.
        print(f"brainalign: error: {_os_error_message(err)}", file=sys.stderr)
        return 2
    except BrainalignError as err:
        config = getattr(args, "config", None)
        if isinstance(err, ConfigError) and err.path is None and config is not None:
            # A stage found a bad config value: name the config file it came from.
            err = ConfigError(config, err.field, err.detail)
        print(f"brainalign: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
