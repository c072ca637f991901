"""The one way figures are saved."""

from ferkit.figures import plt, save_figure


def test_save_figure_writes_a_png_and_closes_the_figure(tmp_path):
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [1, 0])
    path = save_figure(fig, tmp_path / "f.png", dpi=50)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and fig.number not in plt.get_fignums()
    assert plt.get_backend().lower() == "agg"
