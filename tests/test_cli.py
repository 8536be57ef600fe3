"""The qvfe command: help text, and every class of bad input -> one line naming the key, exit 2."""

import subprocess
import sys

import pytest

from qvfe.cli import main


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "qvfe.cli", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


def test_help_lists_commands():
    r = _cli("--help")
    assert r.returncode == 0
    for word in ("run", "eval", "keys", "spec", "examples"):
        assert word in r.stdout


@pytest.mark.parametrize("args, needle", [
    (["run", "--set", "system.n_up=-1"], "system.n_up = -1 is invalid: must be an integer in [0, 64]"),
    (["run", "--set", "system.T=-1"], "system.T = -1 is invalid"),
    (["run", "--set", "system.L=8"], "system.L is not a known key"),
    (["run", "--set", "optim.nope=1"], "optim.nope is not a known key"),
    (["run", "--set", "steps"], "expected section.key=value"),
    (["run", "missing.toml"], "spec file 'missing.toml' does not exist"),
    (["eval", "no_such_dir"], "is not a qvfe run directory"),
])
def test_bad_input_exit_2_one_line_no_traceback(args, needle, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert needle in err
    assert "Traceback" not in err
    assert err.strip().count("\n") == 0 or err.startswith("qvfe: ") and "error" in err


@pytest.mark.parametrize("value", ["nan", "-5", "inf", "soon"])
def test_a_stall_timeout_that_is_not_seconds_is_exit_2(value, capsys):
    """nan passed the `<= 0` test and ended in the watchdog's traceback (a review)."""
    with pytest.raises(SystemExit) as e:
        main(["eval", "no_such_dir", "--stall-timeout", value])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "--stall-timeout: must be a finite number of seconds ≥ 0" in err
    assert "Traceback" not in err


def test_a_temperature_too_small_to_resolve_the_levels_is_exit_2(tmp_path, capsys):
    """The spec's range takes a subnormal T; the occupations' ideal-gas logits do not (1/T
    overflows): a SpecError naming system.T before any compute, not a traceback."""
    assert main(["run", "--set", "system.T=1e-310", "--out", str(tmp_path / "o"),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "system.T = 1e-310: the occupation model cannot be built" in err
    assert "Traceback" not in err


def test_bad_input_in_a_subprocess_is_exit_2(tmp_path):
    spec = tmp_path / "s.toml"
    spec.write_text('[system]\nkind = "coulomb_trap"\nn = 2\nbeta = -3\n')
    r = _cli("run", str(spec), "--out", str(tmp_path / "o"))
    assert r.returncode == 2
    assert r.stderr.strip() == ("qvfe: error: system.beta = -3 is invalid: "
                                "must be a number in (0.0, 1000.0]")
    assert not (tmp_path / "o").exists()  # rejected before anything was written


def test_spec_and_keys_commands(capsys):
    assert main(["spec", "--set", "optim.steps=3"]) == 0
    assert "steps = 3" in capsys.readouterr().out
    assert main(["keys"]) == 0
    out = capsys.readouterr().out
    assert "system.beta" in out and "system.rs" in out and "system.omega" in out


def test_existing_non_run_directory_is_refused(tmp_path, capsys):
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "something").write_text("x")
    assert main(["run", "--out", str(tmp_path / "o")]) == 2
    assert "not a qvfe run directory" in capsys.readouterr().err


def test_a_diverged_run_is_one_line_exit_1(tmp_path, capsys, monkeypatch):
    """The driver stops at the first step with non-finite metrics (before its checkpoint); the
    command says so in one line instead of a traceback."""
    def diverging(*args, **kwargs):
        raise FloatingPointError("step 3: non-finite metrics {'F': nan}; lower optim.lr or "
                                 "check the spec")

    monkeypatch.setattr(sys.modules["qvfe.run"], "run", diverging)  # qvfe.run is the function
    assert main(["run", "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith(
        "qvfe: error: the run diverged: step 3: non-finite metrics")


def test_a_resume_names_its_step_and_a_second_signal_is_one_line_exit_130(tmp_path, capsys,
                                                                          monkeypatch):
    """A second SIGINT/SIGTERM raises KeyboardInterrupt out of the driver's handler: the command
    says the checkpoints so far are intact and how to resume, instead of a traceback."""
    (tmp_path / "o" / "checkpoints").mkdir(parents=True)
    (tmp_path / "o" / "checkpoints" / "step_000000007.ckpt").write_bytes(b"")

    def second_signal(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(sys.modules["qvfe.run"], "run", second_signal)
    assert main(["run", "--out", str(tmp_path / "o")]) == 130
    err = capsys.readouterr().err
    assert "resuming from the checkpoint of step 7" in err and "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        "qvfe: stopped at once by a second signal; the newest checkpoint is intact, resume with "
        f"`qvfe run {tmp_path / 'o'}`")
