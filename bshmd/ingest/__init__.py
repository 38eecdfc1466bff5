"""Hot-folder ingest: watch input folders, wait until files settle, claim them in the job ledger.

Public API: ``Ingestor`` (hands settled, claimed ``Job``s to the pipeline). Claims themselves
are the ledger's (``bshmd.ledger``).
"""

from bshmd.ingest.ingestor import Ingestor

__all__ = ["Ingestor"]
