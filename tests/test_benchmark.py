"""Step-throughput measurement used by the benchmark scripts (structure only, no timing targets)."""

from pathlib import Path

import qvfe
from qvfe.benchmark import step_throughput, step_throughput_isolated

TINY = {"system": {"kind": "electron_gas", "n_up": 2, "n_down": 0, "dim": 2, "rs": 2.0,
                   "theta": 0.5},
        "model": {"occupation_hidden": 4, "backflow_hidden": 4},
        "sampler": {"batch": 8, "burn_in": 2, "mcmc_sweeps": 1}}


def test_step_throughput_reports_per_step_figures():
    r = step_throughput(qvfe.load_spec(TINY), n_steps=2)
    assert r["batch"] == 8 and r["s_per_step"] > 0 and r["compile_s"] > 0
    assert r["samples_steps_per_s"] == r["batch"] / r["s_per_step"]
    assert r["backend"] == "cpu" and r["devices"] >= 1


def test_isolated_run_returns_the_figures_or_says_why():
    r = step_throughput_isolated(TINY, n_steps=1, timeout=300)
    assert isinstance(r, dict) and r["batch"] == 8, r
    bad = step_throughput_isolated({"system": {"kind": "electron_gas"}}, timeout=300)
    assert isinstance(bad, str) and bad.startswith("failed") and "n_up" in bad


def test_step_rate_from_log_leaves_out_the_compile_step(tmp_path):
    import json

    from qvfe.benchmark import step_rate_from_log

    # step 1 carries 40 s of compilation; then 0.25 s per step, with one slow checkpoint write
    walls = {1: 40.0, 2: 40.25, 3: 40.5, 4: 40.75, 5: 41.0, 6: 43.0, 7: 43.25, 8: 43.5}
    (tmp_path / "log.jsonl").write_text(
        "".join(json.dumps({"step": k, "wall_s": w}) + "\n" for k, w in walls.items()))
    rate = step_rate_from_log(str(tmp_path))
    assert rate == {"steps": 8.0, "s_per_step": 0.25}


def test_train_runs_side_by_side(tmp_path):
    from qvfe.benchmark import train_runs

    raw = {**TINY, "optim": {"steps": 2}, "eval": {"samples": 16}}
    # names with a dot, as a scan's rs1.2 and rs1.25: each run's spec file is its own (cut at
    # the dot, both were rs1.toml, which the concurrent runs shared)
    outs = [str(tmp_path / "rs1.2"), str(tmp_path / "rs1.25")]
    walls = train_runs([(raw, outs[0]), ({**raw, "run": {"seed": 1}}, outs[1])], concurrent=True)
    assert len(walls) == 2 and min(walls) > 0
    results = [qvfe.Result.from_json(Path(o) / "result.json") for o in outs]
    assert [r.steps for r in results] == [2, 2] and [r.seed for r in results] == [0, 1]
    assert sorted(p.name for p in tmp_path.glob("*.toml")) == ["rs1.2.toml", "rs1.25.toml"]
