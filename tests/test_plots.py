import numpy as np
import pytest

from inference.reports.plots import plot_reliability, plot_risk_coverage

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def is_png(path):
    with open(path, "rb") as f:
        return f.read(8) == PNG_MAGIC and path.stat().st_size > 1000


@pytest.mark.parametrize("n", [0, 1, 500])
def test_plots_write_pngs(tmp_path, n):
    rng = np.random.default_rng(n)
    conf = rng.random(n)
    correct = rng.random(n) < conf
    plot_reliability(conf, correct, tmp_path / "plots" / "reliability.png")  # the folder is created
    plot_risk_coverage(1 - conf, ~correct, tmp_path / "risk_coverage.png")
    assert is_png(tmp_path / "plots" / "reliability.png") and is_png(tmp_path / "risk_coverage.png")


def test_plots_reject_bad_input(tmp_path):
    with pytest.raises(ValueError, match="equal length"):
        plot_risk_coverage([0.1, 0.2], [True], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
