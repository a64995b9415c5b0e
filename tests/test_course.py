"""Tests for camlkit.course: the notebooks' setup (the run-size switch ``smoke``, the data folder
``find_data_dir``) and ``show``, the library's own code shown where a notebook explains it."""

import inspect
import textwrap
from pathlib import Path

import pytest

from camlkit import course, cps, occ
from camlkit.cma import CMA
from camlkit.errors import CamlkitError

ROOT = Path(__file__).resolve().parents[1]


def test_a_function_shows_its_source_in_plain_text_and_html():
    shown = course.show(cps.sharpen)
    text, page = repr(shown), shown._repr_html_()
    assert "def sharpen(p: torch.Tensor, T: float = 0.1)" in text
    assert "return p_pow / (p_pow + (1.0 - p) ** (1.0 / T))" in text
    assert text.splitlines()[0] == "# " + shown.header
    # the HTML is highlighted: the keyword and the name sit in their own styled spans
    assert '<span style="color: #007020; font-weight: bold">def</span>' in page
    assert ">sharpen</span>" in page and "p_pow" in page
    assert '<pre style="white-space: pre; word-break: normal; overflow-x: auto; ' in page  # no mid-word wrap
    assert shown.header in page


def test_the_header_names_the_file_and_the_lines_inspect_finds():
    lines, first = inspect.getsourcelines(occ.occ_loss)
    shown = course.show(occ.occ_loss)
    assert shown.header == f"camlkit/occ.py · occ_loss (lines {first}-{first + len(lines) - 1})"
    assert shown.path == ROOT / "camlkit" / "occ.py"
    file_lines = shown.path.read_text().splitlines()
    assert file_lines[shown.first - 1].startswith("def occ_loss(")
    assert file_lines[shown.last - 1].strip() == "return -(sim_a * log_v).sum(dim=1).mean()"
    # the HTML numbers the lines as the file does
    page = shown._repr_html_()
    assert f">{shown.first}</span>" in page and f">{shown.last}</span>" in page


def test_a_method_is_dedented_and_named_by_its_class():
    for method in (CMA.forward, CMA(d_model=8, n_heads=2).forward):  # plain and bound
        shown = course.show(method)
        lines, first = inspect.getsourcelines(CMA.forward)
        assert shown.header == f"camlkit/cma.py · CMA.forward (lines {first}-{first + len(lines) - 1})"
        assert shown.code == textwrap.dedent("".join(lines))
        assert shown.code.startswith("def forward(self, a_in, return_attention=False):")
        assert 'rearrange(a_in, "b c h w d -> b (h w d) c")' in repr(shown)


def test_a_class_shows_whole():
    shown = course.show(occ.MemoryBank)
    assert shown.code.startswith("class MemoryBank:")
    assert "def update(self, slot: int, z: torch.Tensor, y: torch.Tensor) -> None:" in shown.code


@pytest.mark.parametrize("thing, named", [(len, "built-in function len"), (3, "int 3"),
                                          (["a\nb"] * 40, "list")])
def test_something_without_source_is_a_one_line_error_naming_it(thing, named):
    with pytest.raises(CamlkitError) as err:
        course.show(thing)
    message = str(err.value)
    assert "\n" not in message and named in message and "course.show" in message


# ----------------------------------------------------------------------------- notebook setup
def test_smoke_reads_the_environment(monkeypatch):
    monkeypatch.setenv("CAMLKIT_SMOKE", "1")
    assert course.smoke()
    monkeypatch.setenv("CAMLKIT_SMOKE", "0")
    assert not course.smoke()
    monkeypatch.delenv("CAMLKIT_SMOKE")
    assert not course.smoke()


def test_find_data_dir_prefers_the_environment(tmp_path, monkeypatch):
    (tmp_path / "train.list").write_text("A\n")
    monkeypatch.setenv("CAMLKIT_DATA", str(tmp_path))
    assert course.find_data_dir() == tmp_path.resolve()
    monkeypatch.setenv("CAMLKIT_DATA", str(tmp_path / "missing"))
    with pytest.raises(CamlkitError, match="CAMLKIT_DATA"):
        course.find_data_dir()


def test_find_data_dir_tries_the_working_folder_then_its_parent(tmp_path, monkeypatch):
    """data/LA of the working folder, else of its parent (a notebook runs in notebooks/); nothing
    beside the repository: a folder two levels up is not found."""
    monkeypatch.delenv("CAMLKIT_DATA", raising=False)
    repo = tmp_path / "outside" / "repo"
    work = repo / "notebooks"
    above = repo / "data" / "LA"  # data/LA of the repository, seen from notebooks/
    local = work / "data" / "LA"
    beside = tmp_path / "outside" / "data" / "LA"  # beside the repository: never looked at
    for folder in (work, above, beside):
        folder.mkdir(parents=True, exist_ok=True)
    (beside / "train.list").write_text("A\n")
    monkeypatch.chdir(work)
    with pytest.raises(CamlkitError, match="looked in"):
        course.find_data_dir()
    (above / "train.list").write_text("A\n")
    assert course.find_data_dir() == above.resolve()
    local.mkdir(parents=True)
    (local / "train.list").write_text("A\n")
    assert course.find_data_dir() == local.resolve()
    assert course.data_candidates() == [local, above]
