"""bench/w1_floor.py: its hand-written floors train the same network as fastbp."""
import numpy as np
import pytest

from bench import w1_floor


def test_the_floors_train_the_network_fastbp_trains():
    results = w1_floor.measure(steps=300, repeats=1)
    names = [name for name, *_ in results]
    assert names[0] == "fastbp" and len(names) == 4
    reference = results[0][3]
    moved = np.abs(reference - w1_floor.measure(steps=1, repeats=1)[0][3]).max()
    assert moved > 1e-2  # 300 steps change the weights: the comparison below means something
    for name, first, median, flat in results:
        assert first > 0 and median > 0, name
        np.testing.assert_allclose(flat, reference, rtol=0, atol=1e-4, err_msg=name)


def test_the_script_reports_every_runner_and_exits_0(capsys):
    assert w1_floor.main(["--repeats", "1", "--steps", "20"]) == 0
    out = capsys.readouterr().out
    for name in ("fastbp", "runtime sizes, C expf", "fixed sizes, C expf",
                 "fixed sizes, poly_exp"):
        assert name in out


def test_a_floor_that_trains_another_network_fails_the_run(capsys, monkeypatch):
    measure = w1_floor.measure

    def one_floor_off(steps, repeats):
        results = measure(steps, repeats)
        name, first, median, flat = results[2]
        results[2] = (name, first, median, flat + 0.01)
        return results

    monkeypatch.setattr(w1_floor, "measure", one_floor_off)
    assert w1_floor.main(["--repeats", "1", "--steps", "20"]) == 1
    assert "did not train the same network" in capsys.readouterr().err


def test_make_floor_rejects_an_unknown_exp():
    with pytest.raises(ValueError, match="exp must be"):
        w1_floor.make_floor("fast")
