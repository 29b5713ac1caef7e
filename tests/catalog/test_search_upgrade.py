"""A catalog made before search existed gets its documents' metadata indexed the first time it is opened."""

from sqlalchemy import text

from preserve.catalog import Catalog
from preserve.search.fold import fold


def test_an_older_catalog_is_indexed_once_when_opened(repo, batch):
    result = repo.ingest(batch)
    assert result.aips
    url = repo.settings.catalog_url
    subject = repo.show_aip(result.aips[0]["id"])["documents"][0]["subject"]
    word = max(subject.split(), key=len)
    before = repo.search(fold(word))["total"]
    assert before >= 1
    repo.close()
    with Catalog(url).engine.begin() as conn:  # as a catalog of the previous release: no search tables
        conn.execute(text("DROP TABLE search_fts"))
        conn.execute(text("DROP TABLE search_doc"))
    with Catalog.open(url) as cat:
        again = cat.search(fold(word))
        assert again["total"] == before
        docs = sum(len(cat.get_aip(a["id"])["documents"]) for a in cat.list_aips())
        with cat.engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM search_doc")).scalar() == docs
    with Catalog.open(url) as cat:  # opened again: nothing indexed twice
        with cat.engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM search_doc")).scalar() == docs
