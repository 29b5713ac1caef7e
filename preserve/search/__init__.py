"""Full-text search over the catalog's documents: diacritics-insensitive, SQLite FTS5 or PostgreSQL.

fold.py folds text (lower case, no Vietnamese diacritics, đ → d) keeping its length; query.py parses what the user
typed into terms; rank.py orders the matches (tiers, then fields); snippet.py cuts the snippets; index.py is the
API, over sqlite_fts.py and postgres_fts.py (the SQL of each engine) and rows.py (what both store).
"""

from preserve.search.fold import fold, has_diacritics
from preserve.search.index import SearchDoc, Visibility, ensure_schema, index_documents, remove_dossier, search
from preserve.search.query import Query, Term, parse

__all__ = ["SearchDoc", "Visibility", "ensure_schema", "index_documents", "remove_dossier", "search",
           "fold", "has_diacritics", "Query", "Term", "parse"]
