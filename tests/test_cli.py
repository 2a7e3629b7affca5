"""The command line: every command's happy path and its one-line user errors (exit 2)."""

from __future__ import annotations

import signal
import sys

import pytest

from relukit.cli import main, program


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_eval_prints_the_classic_example(capsys):
    assert run(capsys, "eval", "relu", "--", "-2", "0.5", "3") == (0, "0 0.5 3\n", "")


def test_eval_derivative_and_params(capsys):
    assert run(capsys, "eval", "relu", "--derivative", "--", "0.8", "-1.0", "3.2")[1] == "1 0 1\n"
    status, out, _ = run(
        capsys, "eval", "leaky_relu", "--param", "negative_slope=0.5", "--", "-2", "4"
    )
    assert (status, out) == (0, "-1 4\n")


def test_eval_special_values(capsys):
    assert run(capsys, "eval", "gelu", "--", "-inf", "nan", "inf")[1] == "0 nan inf\n"


def test_eval_prints_tiny_and_huge_values_in_scientific_notation_that_reads_back(capsys):
    values = ["1e-300", "-4.9e-324", "9.99e-05", "1e-4", "0.21", "123456.5", "1e16", "-2e300"]
    status, out, _ = run(capsys, "eval", "leaky_relu", "--param", "negative_slope=1", "--", *values)
    assert status == 0
    assert out == "1e-300 -5e-324 9.99e-05 0.0001 0.21 123456.5 1e+16 -2e+300\n"
    assert [float(v) for v in out.split()] == [float(v) for v in values]


def test_eval_structural_member(capsys):
    assert (
        run(capsys, "eval", "maxout", "--param", "pieces=2", "--", "1", "3", "-2", "-5")[1]
        == "3 -2\n"
    )


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (("eval", "nope", "1"), "unknown activation 'nope'"),
        (("eval", "relu", "--", "abc"), "value 'abc' is not a number"),
        (("eval", "softplus", "--param", "beta=0", "1"), "beta=0.0: must be > 0"),
        (("eval", "relu", "--param", "alpha=1", "1"), "relu has no parameter 'alpha'"),
        (("eval", "elu", "--param", "alpha", "1"), "is not of the form k=v"),
        (("eval", "elu", "--param", "alpha=x", "1"), "alpha='x' is not a valid float"),
        (("eval", "crelu", "--derivative", "1"), "crelu has no elementwise derivative"),
        (("eval", "maxout", "--param", "pieces=2", "1", "2", "3"), "pieces=2 does not divide"),
        (("plot", "relu", "-o", "out.jpg"), "must end in .png or .svg"),
        (("plot", "-o", "out.png"), "name at least one member"),
        (("plot", "relu", "--all", "-o", "out.png"), "not both"),
        (("plot", "relu", "--range", "3", "1", "-o", "out.png"), "must be < high"),
        (("plot", "relu", "--range", "-inf", "0", "-o", "out.png"), "of a finite width"),
        (("plot", "relu", "--range", "-1e308", "1e308", "-o", "out.png"), "of a finite width"),
        (("plot", "--all", "--range", "3", "3", "-o", "out.png"), "must be < high"),
    ],
)
def test_user_errors_are_one_line_with_status_2(capsys, tmp_path, monkeypatch, argv, fragment):
    monkeypatch.chdir(tmp_path)
    status, out, err = run(capsys, *argv)
    assert status == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith(f"relukit {argv[0]}: error: ")
    assert fragment in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (("bench", "--threads", "0"), "relukit bench: error: threads=0 must be an integer >= 1"),
        (("study", "--seeds", "0"), "relukit study: error: seeds must be an int >= 1, got 0"),
    ],
)
def test_an_error_names_its_command_once(capsys, tmp_path, monkeypatch, argv, line):
    monkeypatch.chdir(tmp_path)
    assert run(capsys, *argv) == (2, "", line + "\n")


def test_argparse_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["eval"])
    assert exit_info.value.code == 2


def test_help_everywhere(capsys):
    for argv in ([], ["list"], ["eval"], ["plot"]):
        with pytest.raises(SystemExit) as exit_info:
            main([*argv, "--help"])
        assert exit_info.value.code == 0
        assert "usage: relukit" in capsys.readouterr().out


def test_list_table_and_markdown(capsys, tmp_path):
    status, out, _ = run(capsys, "list")
    assert status == 0 and "leaky_relu" in out and "maxout" in out
    target = tmp_path / "family.md"
    assert run(capsys, "list", "--markdown", str(target))[0] == 0
    assert "| relu |" in target.read_text(encoding="utf-8")


def test_plot_writes_png_and_svg(capsys, tmp_path):
    png, svg = tmp_path / "a.png", tmp_path / "b.svg"
    assert run(capsys, "plot", "relu", "leaky_relu:negative_slope=0.07", "-o", str(png))[0] == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (
        run(capsys, "plot", "relu6", "--derivative", "--range", "-2", "8", "-o", str(svg))[0] == 0
    )
    assert "<svg" in svg.read_text(encoding="utf-8")


def test_plot_all_writes_the_gallery(capsys, tmp_path):
    target = tmp_path / "gallery.png"
    assert run(capsys, "plot", "--all", "-o", str(target)) == (0, f"wrote {target}\n", "")
    assert target.stat().st_size > 50_000


def test_plot_all_draws_the_gallery_over_the_range_given(capsys, tmp_path, monkeypatch):
    from relukit import plot

    gallery, drawn = plot.gallery, []
    monkeypatch.setattr(plot, "gallery", lambda path, **kw: drawn.append(kw))
    for argv, want in [((), {}), (("--range", "-3", "3"), {"low": -3.0, "high": 3.0})]:
        assert run(capsys, "plot", "--all", *argv, "-o", str(tmp_path / "g.png"))[0] == 0
        assert drawn.pop() == want
    low, high = gallery(low=-3.0, high=3.0).axes[0].get_xlim()
    assert -3.5 < low < -3.0 and 3.0 < high < 3.5


def test_negative_numbers_need_no_double_dash(capsys, tmp_path):
    assert run(capsys, "eval", "relu", "-1e3", "-2", "-inf", "3") == (0, "0 0 0 3\n", "")
    status, out, _ = run(capsys, "eval", "leaky_relu", "-1e3", "--param", "negative_slope=-0.5")
    assert (status, out) == (0, "500\n")
    target = tmp_path / "wide.png"
    status, out, err = run(capsys, "plot", "relu", "--range", "-1e3", "1e3", "-o", str(target))
    assert (status, err) == (0, "") and target.stat().st_size > 0


def test_a_bug_inside_relukit_keeps_its_traceback(monkeypatch):
    """Only relukit's own user errors become one line; a TypeError from a bug propagates."""
    import relukit

    def broken(*args, **kwargs):
        raise TypeError("unsupported operand type(s) for +: 'int' and 'NoneType'")

    monkeypatch.setattr(relukit.activation.ElementwiseFunction, "__call__", broken)
    with pytest.raises(TypeError, match="unsupported operand"):
        main(["eval", "relu", "1"])


def _ctrl_c_in_eval(monkeypatch) -> None:
    import relukit

    def pressed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(relukit.activation.ElementwiseFunction, "__call__", pressed)


def test_a_command_stopped_by_ctrl_c_in_process_gives_back_the_callers_handler(monkeypatch, capsys):
    """130 and one line; the caller's Ctrl-C works again afterwards (was SIG_IGN for good)."""
    _ctrl_c_in_eval(monkeypatch)
    before = signal.getsignal(signal.SIGINT)
    assert main(["eval", "relu", "1"]) == 130
    assert capsys.readouterr().err == "relukit eval: stopped (Ctrl-C)\n"
    assert signal.getsignal(signal.SIGINT) is before


def test_the_program_stopped_by_ctrl_c_ignores_ctrl_c_until_it_exits(monkeypatch, capsys):
    _ctrl_c_in_eval(monkeypatch)
    monkeypatch.setattr(sys, "argv", ["relukit", "eval", "relu", "1"])
    before = signal.getsignal(signal.SIGINT)
    try:
        with pytest.raises(SystemExit) as exit_:
            program()
        assert exit_.value.code == 130
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)


def test_user_errors_are_relukits_own_type():
    import relukit

    for error in (relukit.ParameterError, relukit.UserTypeError, relukit.UserValueError):
        assert issubclass(error, relukit.UserError)
    assert issubclass(relukit.ParameterError, ValueError)
    assert issubclass(relukit.UserTypeError, TypeError)
    with pytest.raises(relukit.UserError):
        relukit.relu("text")
    with pytest.raises(relukit.UserError):
        relukit.get("nope")


@pytest.mark.parametrize("jobs", ["1", "3"])
def test_study_refuses_jobs_with_a_cluster_in_one_line_before_any_work(capsys, tmp_path, jobs):
    out = tmp_path / "report"
    code, stdout, stderr = run(
        capsys, "study", "--cluster", "tcp://127.0.0.1:1", "--jobs", jobs, "--out", str(out)
    )
    assert code == 2 and stdout == ""
    assert stderr.count("\n") == 1 and "--jobs" in stderr and "--cluster" in stderr
    assert not out.exists()
