import numpy as np
import pytest

from runtime.errors import SiteError
from runtime.site import load_queries, load_site
from tests.conftest import write_rgb

IMG = np.full((20, 20, 3), 128, np.uint8)


def test_folder_site_with_metadata(tiny_site):
    site = load_site(tiny_site)
    assert site.name == "gallery"
    assert len(site.instances) == 6 and len(site.references) == 12
    assert site.metadata["harbour_at_dusk"]["title"] == "Harbour at Dusk"


def test_folder_problems_are_listed_together(tmp_path):
    write_rgb(tmp_path / "a" / "1.jpg", IMG)
    (tmp_path / "empty").mkdir()
    (tmp_path / "also_empty").mkdir()
    write_rgb(tmp_path / "stray.jpg", IMG)
    with pytest.raises(SiteError) as err:
        load_site(tmp_path)
    msg = str(err.value)
    assert "3 problem(s)" in msg and "empty" in msg and "also_empty" in msg and "stray.jpg" in msg


def test_metadata_errors(tmp_path):
    write_rgb(tmp_path / "a" / "1.jpg", IMG)
    (tmp_path / "instances.csv").write_text("id,title\na,One\na,Again\nghost,Who\n")
    with pytest.raises(SiteError) as err:
        load_site(tmp_path)
    assert "duplicate id 'a'" in str(err.value) and "unknown id 'ghost'" in str(err.value)
    (tmp_path / "instances.csv").write_text("name,title\na,One\n")
    with pytest.raises(SiteError, match="'id'"):
        load_site(tmp_path)


def test_manifest_site_and_queries(tmp_path):
    for name in ("r1", "r2", "q1", "q2", "q3"):
        write_rgb(tmp_path / "img" / f"{name}.jpg", IMG)
    (tmp_path / "manifest.csv").write_text(
        "path,instance,role\nimg/r1.jpg,x,ref\nimg/r2.jpg,y,ref\nimg/q1.jpg,x,query\n"
        "img/q2.jpg,__unknown__,query\nimg/q3.jpg,x|y,query\n")
    site = load_site(tmp_path / "manifest.csv")
    assert site.instances == ["x", "y"] and site.name == tmp_path.name
    queries = load_queries(tmp_path / "manifest.csv")
    assert [sorted(q.instances) for q in queries] == [["x"], [], ["x", "y"]]
    assert queries[1].is_unknown


def test_manifest_errors(tmp_path):
    (tmp_path / "m.csv").write_text("path,instance\nx.jpg,a\n")
    with pytest.raises(SiteError, match="missing"):
        load_site(tmp_path / "m.csv")
    (tmp_path / "m.csv").write_text("path,instance,role\nnothere.jpg,a,ref\nx.jpg,b,bogus\n")
    with pytest.raises(SiteError) as err:
        load_site(tmp_path / "m.csv")
    assert "nothere.jpg" in str(err.value) and "bogus" in str(err.value)


def test_query_folder_with_unknown(tmp_path):
    write_rgb(tmp_path / "a" / "1.jpg", IMG)
    write_rgb(tmp_path / "__unknown__" / "wall.jpg", IMG)
    qs = load_queries(tmp_path)
    assert sorted(q.is_unknown for q in qs) == [False, True]
    with pytest.raises(SiteError, match="no such"):
        load_queries(tmp_path / "missing")
