"""``refdeblur check-port`` (refdeblur/porting/check.py, derivations/porting.md §5).

A trace agrees with itself; a divergence is located at the first array that
differs in network order; shapes, NaN, aliases, missing and unknown names are
handled as documented; the command fails with one line on bad input; and
the worked port of examples/port_check_numpy_minimal.py agrees with the trace.
"""

from pathlib import Path

import numpy as np
import pytest

from refdeblur.cli import main
from refdeblur.models import load_shipped_model
from refdeblur.porting import compare_traces, format_comparison, make_trace, write_trace
from refdeblur.porting.check import layer_of
from refdeblur.porting.trace import METADATA_KEY
from script_loader import load_script

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "port_check_numpy_minimal.py"


@pytest.fixture(scope="module")
def trace():
    return make_trace(17, size=(50, 50))


@pytest.fixture(scope="module")
def trace_file(trace, tmp_path_factory):
    path = tmp_path_factory.mktemp("trace") / "trace.npz"
    write_trace(trace, path)
    return path


def arrays_of(trace):
    return {name: value for name, value in trace.items() if name != METADATA_KEY}


def test_a_trace_agrees_with_itself(trace):
    result = compare_traces(trace, arrays_of(trace))
    assert result.ok and result.first_divergent is None
    assert len(result.rows) == len(trace[METADATA_KEY]["names"])
    assert not result.unknown and not result.missing
    assert all(row.max_abs == 0 for row in result.rows)
    # without the aliases, they are missing, which is no failure
    aliases = trace[METADATA_KEY]["aliases"]
    stored = {name: value for name, value in arrays_of(trace).items() if name not in aliases}
    result = compare_traces(trace, stored)
    assert result.ok and sorted(result.missing) == sorted(aliases)


def test_the_first_divergent_array_is_named(trace):
    theirs = arrays_of(trace)
    deep = "scale1/stage2/kernel_quotient/out"
    later = "scale1/stage3/tanh1/grad_in/x"
    theirs[deep] = theirs[deep] * (1 + 1e-6)
    theirs[later] = theirs[later] + 1.0
    result = compare_traces(trace, theirs)
    assert not result.ok
    assert result.first_divergent.name == deep
    assert [row.name for row in result.rows if not row.agree] == [deep, later]
    names = [row.name for row in result.rows]
    assert all(row.agree for row in result.rows[:names.index(deep)])
    np.testing.assert_allclose(result.first_divergent.max_rel, 1e-6, rtol=1e-6)
    assert layer_of(deep) == "scale1/stage2/kernel_quotient"
    report = format_comparison(result)
    assert f"first divergence: {deep} (forward, layer scale1/stage2/kernel_quotient)" in report
    # a looser tolerance accepts the small difference, not the large one
    assert compare_traces(trace, theirs, rtol=1e-5).first_divergent.name == later


def test_a_port_with_a_different_beta_x_in_stage_2_diverges_there(trace):
    net = load_shipped_model(17, dtype=np.float64)
    params = dict(net.params)
    params["scale1.stage2.image_quotient.log_beta"] = (
        params["scale1.stage2.image_quotient.log_beta"] + 0.1)
    port = make_trace(type(net)(net.architecture, params), size=(50, 50))
    # a port writes what it computes; the parameters it read are left out
    theirs = {name: value for name, value in arrays_of(port).items()
              if not name.startswith("params/")}
    result = compare_traces(trace, theirs)
    assert result.first_divergent.name == "scale1/stage2/image_quotient/step/beta_x"
    names = [row.name for row in result.rows]
    first = names.index(result.first_divergent.name)
    assert first > names.index("scale1/stage2/kernel_quotient/out")
    assert all(row.agree for row in result.rows[:first])
    differing = {row.name for row in result.rows if not row.agree}
    assert "scale1/stage3/kernel_quotient/out" in differing
    assert "scale1/stage1/image_quotient/grad_param/log_beta" in differing


def test_shape_mismatch_nan_and_non_numbers_are_differences(trace):
    kernel = trace["scale1/stage1/kernel_quotient/out"]
    theirs = {"scale1/stage1/kernel_quotient/out": kernel[0],
              "scale1/stage1/image_quotient/out": np.full((1, 50, 50), np.nan),
              "loss/value": np.array("0.1")}
    rows = {row.name: row for row in compare_traces(trace, theirs).rows}
    assert not any(row.agree for row in rows.values())
    assert "batch axis" in rows["scale1/stage1/kernel_quotient/out"].note
    assert rows["scale1/stage1/kernel_quotient/out"].shape_theirs == (17, 17)
    assert "not finite" in rows["scale1/stage1/image_quotient/out"].note
    assert "real numbers" in rows["loss/value"].note
    assert compare_traces(trace, {"input/blurry": np.zeros((1, 50, 49))}).rows[0].note == (
        "shape (1, 50, 49), the trace has (1, 50, 50)")


def test_aliases_unknown_and_missing_names(trace):
    conv_out = trace["scale1/stage1/conv/out"]
    theirs = {"output/kernel": trace["scale1/stage3/kernel_quotient/out"],
              "scale1/stage1/tanh1/in/x": conv_out,
              "scale1/stage1/tanh1/out": np.tanh(conv_out) + 1e-3,
              "scale1/stage1/my_extra": np.zeros(3)}
    result = compare_traces(trace, theirs)
    rows = {row.name: row for row in result.rows}
    assert rows["scale1/stage1/tanh1/in/x"].canonical == "scale1/stage1/conv/out"
    assert rows["scale1/stage1/tanh1/in/x"].agree and rows["output/kernel"].agree
    assert result.first_divergent.name == "scale1/stage1/tanh1/out"
    assert result.unknown == ["scale1/stage1/my_extra"]
    assert len(result.missing) == len(trace[METADATA_KEY]["names"]) - 3
    report = format_comparison(result)
    assert "names unknown to the trace (1): scale1/stage1/my_extra" in report
    empty = compare_traces(trace, {"something": np.zeros(2)})
    assert not empty.ok and "no array of the port's file has a trace name" in \
        format_comparison(empty)


def run_cli(argv, capsys):
    try:
        status = main(argv)
    except SystemExit as exit_:      # argparse's usage errors
        status = exit_.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_command_exit_statuses(trace, trace_file, tmp_path, capsys):
    status, out, err = run_cli(["check-port", str(trace_file), str(trace_file)], capsys)
    assert status == 0 and err == "" and "all compared arrays agree" in out
    assert out.splitlines()[0].split()[:4] == ["#", "name", "shape", "max"]
    theirs = tmp_path / "theirs.npz"
    np.savez(theirs, **{"scale1/stage2/conv/out": trace["scale1/stage2/conv/out"] * 1.01,
                        "scale1/stage1/conv/out": trace["scale1/stage1/conv/out"]})
    status, out, _ = run_cli(["check-port", str(trace_file), str(theirs)], capsys)
    assert status == 1
    assert "first divergence: scale1/stage2/conv/out" in out
    status, out, _ = run_cli(["check-port", str(trace_file), str(theirs), "--rtol", "0.02"],
                             capsys)
    assert status == 0


def test_command_errors_are_one_line(trace_file, tmp_path, capsys):
    not_a_trace = tmp_path / "plain.npz"
    np.savez(not_a_trace, x=np.zeros(3))
    text = tmp_path / "text.npz"
    text.write_text("not an archive")
    cases = [
        ([str(tmp_path / "missing.npz"), str(trace_file)], "trace file not found"),
        ([str(trace_file), str(tmp_path / "missing.npz")], "file not found"),
        ([str(not_a_trace), str(trace_file)], "not a refdeblur trace"),
        ([str(ROOT / "refdeblur" / "models" / "k17.npz"), str(trace_file)],
         "not a refdeblur trace"),
        ([str(text), str(trace_file)], "not a readable trace"),
        ([str(trace_file), str(text)], "not a readable .npz archive"),
        ([str(trace_file), str(trace_file), "--atol", "-1"], "must be finite and >= 0"),
    ]
    for argv, message in cases:
        status, out, err = run_cli(["check-port", *argv], capsys)
        assert status == 2 and out == "", argv
        assert len(err.strip().splitlines()) == 1 and message in err, (argv, err)


def load_example():
    return load_script(EXAMPLE)


def test_the_worked_numpy_port_agrees_with_the_trace(trace):
    theirs = load_example().port_stage_one(trace)
    assert len(theirs) == 19 and all(name.startswith("scale1/stage1/") for name in theirs)
    result = compare_traces(trace, theirs, rtol=1e-10)
    assert result.ok and len(result.rows) == 19 and not result.unknown, \
        format_comparison(result)
    assert max(row.max_rel for row in result.rows) <= 1e-10
    # it computes, rather than copies: a wrong convention shows
    wrong = load_example()
    wrong.smooth_length = lambda n: n + 1
    result = compare_traces(trace, wrong.port_stage_one(trace), rtol=1e-10)
    assert result.first_divergent.name == "scale1/stage1/kernel_quotient/step/tapered_sharp"


def test_the_example_script_writes_into_out_and_passes(tmp_path, capsys, monkeypatch):
    module = load_example()
    monkeypatch.setattr(module, "make_trace", lambda kernel_size, seed: make_trace(
        kernel_size, seed=seed, size=(50, 50)))     # the smallest trace, for speed
    monkeypatch.chdir(tmp_path)
    assert module.main(["--out", "port"]) == 0
    assert sorted(p.name for p in (tmp_path / "port").iterdir()) == ["theirs.npz", "trace.npz"]
    assert [p.name for p in tmp_path.iterdir()] == ["port"]
    assert "all compared arrays agree" in capsys.readouterr().out
