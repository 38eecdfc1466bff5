"""Hot-folder ingest: watch input folders, wait until files settle, claim them exactly once.

Public API: ``Ingestor`` (hands settled, claimed ``Job``s to the pipeline) and
``ClaimStore`` (the shared-filesystem claim protocol, see ``bshmd.ingest.claims``).
"""

from bshmd.ingest.claims import ClaimLost, ClaimStore, FileClaim, StateUnavailable
from bshmd.ingest.ingestor import Ingestor

__all__ = ["ClaimLost", "ClaimStore", "FileClaim", "Ingestor", "StateUnavailable"]
