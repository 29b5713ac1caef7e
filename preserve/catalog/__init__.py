"""The catalog: an index of the AIPs (rebuildable from storage), with a hash-chained PREMIS event log.

    from preserve.catalog import Catalog, catalog_url_for
"""

from .catalog import Catalog
from .db import ENV_URL, catalog_url_for

__all__ = ["Catalog", "catalog_url_for", "ENV_URL"]
