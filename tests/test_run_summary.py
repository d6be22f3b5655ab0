"""What a workflow run prints last: the end of each failed job's log, or where the results are (issue #21).

Every rule sends its stderr to its log file, so before this a failed run showed only Snakemake's
``CalledProcessError``: the reason (named file and field) sat in ``logs/…``.
"""

from __future__ import annotations

import subprocess

import numpy as np
import pandas as pd
import yaml

from brainalign.pipeline.run_summary import failed_job_logs, success_summary

SNAKEMAKE_LOG = """\
[Mon Dec  7 01:31:25 2026]
Error in rule responses:
    message: None
    jobid: 4
    output: results/mine/responses/sub-02.h5
    log: results/mine/logs/responses/sub-02.log (check log file(s) for error details)
    shell:
        brainalign responses ... 2> results/mine/logs/responses/sub-02.log
        (command exited with non-zero exit code)
Error in rule score:
    jobid: 7
    log: a.log, b.log (check log file(s) for error details)
Exiting because a job execution failed. Look below for error messages
[Mon Dec  7 01:31:25 2026]
Error in rule responses:
    message: None
    jobid: 4
    log: results/mine/logs/responses/sub-02.log (check log file(s) for error details)
Error in rule aggregate:
    jobid: 9
Complete log(s): x
"""


def test_failed_jobs_are_read_from_snakemakes_log_once_each():
    assert failed_job_logs(SNAKEMAKE_LOG) == [
        ("responses", ["results/mine/logs/responses/sub-02.log"]),
        ("score", ["a.log", "b.log"]),
        ("aggregate", []),
    ]


RETRIED_LOG = """\
Error in rule score:
    jobid: 7
    log: s.log (check log file(s) for error details)
Trying to restart job 7.
Error in rule features:
    jobid: 3
    log: f.log (check log file(s) for error details)
Trying to restart job 3.
Error in rule features:
    jobid: 3
    log: f.log (check log file(s) for error details)
Exiting because a job execution failed. Look below for error messages
"""


def test_a_retried_attempt_is_not_a_failure_unless_the_last_fails_too():
    assert failed_job_logs(RETRIED_LOG) == [("features", ["f.log"])]


def test_one_log_path_or_none_as_snakemake_8_passes_them(tmp_path):
    from brainalign.pipeline.run_summary import failure_summary

    (tmp_path / "f.log").write_text("brainalign: error: bad.tsv: row 3\n")
    main_log = tmp_path / "main.log"
    main_log.write_text(RETRIED_LOG.replace("f.log", str(tmp_path / "f.log")))
    for given in (main_log, str(main_log), [main_log]):
        assert "brainalign: error: bad.tsv: row 3" in failure_summary(given)
    assert "before any job failed" in failure_summary(None)


def _timeseries(folder, bad_subject=None):
    rng = np.random.default_rng(0)
    for subject in ("sub-01", "sub-02"):
        table = pd.DataFrame(rng.standard_normal((90, 2)), columns=["IFG", "MTG"])
        text = table.to_csv(sep="\t", index=False)
        if subject == bad_subject:
            lines = text.splitlines()
            lines[5] = lines[5].split("\t")[0] + "\tnot-a-number"
            text = "\n".join(lines) + "\n"
        (folder / f"{subject}_run-1.tsv").write_text(text)
    words = pd.DataFrame({"onset": 4.0 + 0.8 * np.arange(150), "duration": 0.3,
                          "word": [f"w{i % 7}" for i in range(150)], "run": 1})
    words.to_csv(folder / "words.tsv", sep="\t", index=False)
    cfg = {"dataset": {"name": "mine", "kind": "timeseries", "responses": "{subject}_run-{run}.tsv", "events": "words.tsv",
                       "sampling_interval": 2.0},
           "feature_sets": {"word_rate": {"kind": "word_rate"}},
           "encoder": {"outer_folds": 3, "inner_folds": 3},
           "statistics": {"n_permutations": 0}}
    (folder / "mine.yaml").write_text(yaml.safe_dump(cfg))
    return folder / "mine.yaml"


def test_a_failed_job_shows_its_reason_in_the_terminal(tmp_path, snakemake):
    config = _timeseries(tmp_path, bad_subject="sub-02")
    proc = subprocess.run(snakemake.command(tmp_path, "--config", f"config_path={config}"),
                          env=snakemake.env(), capture_output=True, text=True)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "job(s) failed. The end of each job's log:" in out
    tail = out[out.index("job(s) failed"):]
    assert "rule responses: results/mine/logs/responses/sub-02.log" in tail
    assert str(tmp_path / "sub-02_run-1.tsv") in tail and "'not-a-number'" in tail, tail


def test_success_summary_names_the_report_and_the_best_model_per_roi(tmp_path):
    results = tmp_path / "results" / "mine"
    results.mkdir(parents=True)
    (results / "report.html").write_text("<html></html>")
    pd.DataFrame({"model": ["minilm", "word_rate", "minilm"], "roi": ["LIFG", "LIFG", "V1"],
                  "mean": [0.21, 0.05, 0.02], "sem": [0.01, 0.01, np.nan], "n_subjects": [26, 26, 26],
                  "normalized_mean": [0.8, 0.2, np.nan], "modal_layer": ["4", "0", "1"]}
                 ).to_csv(results / "best_layer_summary.csv", index=False)
    text = success_summary(results, [results / "scores.csv", results / "report.html"])
    assert f"report: {results / 'report.html'}" in text
    assert "scores:" not in text  # not written: not listed
    assert "LIFG: minilm (layer 4 most often), r = 0.210 ± 0.010 (SEM), normalized 0.80, 26 subjects" in text
    assert "V1: minilm (layer 1 most often), r = 0.020, no usable ceiling, 26 subjects" in text
