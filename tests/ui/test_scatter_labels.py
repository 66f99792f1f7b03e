"""The projection scatter's labels never print over each other (issue: PCA labels overlapped)."""
import numpy as np

from lab.ui.widgets.token_plots import ScatterView


def test_labels_do_not_overlap_and_the_prompt_comes_first(qtbot):
    view = ScatterView()
    qtbot.addWidget(view)
    view.resize(600, 400)
    view.show()
    qtbot.waitExposed(view)
    rng = np.random.default_rng(0)
    coords = np.concatenate([rng.normal(0, 1, (12, 2)), rng.normal(0, 0.05, (60, 2))])   # a dense cluster
    labels = [("a-rather-long-word" if i % 3 else "w") + str(i) for i in range(len(coords))]
    kinds = ["prompt"] * 12 + ["neighbour"] * 60
    view.set_points(coords, labels, kinds, [-1] * 12 + [i % 12 for i in range(60)], (0.5, 0.2), selected=3)
    qtbot.wait(50)
    placed = [t.toPlainText() for t in view.texts]
    assert placed[0].endswith("3") and 1 < len(placed) < len(coords)        # thinned, the selected first
    rects = [t.mapRectToScene(t.boundingRect()) for t in view.texts]
    for i, a in enumerate(rects):
        for b in rects[i + 1:]:
            assert not a.intersects(b.adjusted(1, 1, -1, -1)), "two labels overlap"
    assert len(view.scatter.data) == len(coords)                      # every point is drawn


def test_neighbour_links_are_one_item_of_pairs(qtbot):
    view = ScatterView()
    qtbot.addWidget(view)
    coords = np.array([[0, 0], [1, 0], [0.5, 1], [2, 2]], dtype=float)
    view.set_points(coords, ["a", "b", "c", "d"], ["prompt", "prompt", "neighbour", "neighbour"], [-1, -1, 0, 1])
    assert len(view.lines) == 1
    x, y = view.lines[0].getData()
    assert list(zip(x, y)) == [(0.0, 0.0), (0.5, 1.0), (1.0, 0.0), (2.0, 2.0)]    # c-a and d-b


def test_points_keep_their_colour_size_and_hover_text_with_shared_brushes(qtbot):
    """Three shared brushes (one symbol each) instead of a brush per point: the selected point
    is red, the prompt's blue and larger, neighbours grey, every hover tip its token."""
    view = ScatterView()
    qtbot.addWidget(view)
    coords = np.array([[0, 0], [1, 0], [0.5, 1], [2, 2]], dtype=float)
    view.set_points(coords, ["a", "b", "c", "d"], ["prompt", "prompt", "neighbour", "neighbour"], [-1, -1, 0, 1],
                    selected=1)
    spots = view.scatter.points()
    assert [s.brush().color().name() for s in spots] == ["#1f6fe0", "#d03030", "#9a9a9a", "#9a9a9a"]
    assert [s.size() for s in spots] == [10, 10, 6, 6]
    assert [s.data() for s in spots] == ["a", "b", "c", "d"]
