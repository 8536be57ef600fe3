"""Step-throughput measurement used by the benchmark scripts (structure only, no timing targets)."""

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
