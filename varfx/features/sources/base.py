"""The defaults of the feature-source contract (:class:`BaseFeatureSource`)."""

from __future__ import annotations

from typing import Any
from typing import ClassVar

from varfx.api import FeatureSource


# ------------------------------------------------------------------------------ base class


class BaseFeatureSource(FeatureSource):
    """Defaults for the feature-source contract (see the module docstring)."""

    #: False for sources computed from the dataset itself (no file).
    needs_path: ClassVar[bool] = True
    #: Where ``read_track`` values go: ``"window"`` (float, normalised, stacked with the
    #: other tracks) or ``"sequence"`` (uint8 one-hot DNA, stored as is).
    track_store: ClassVar[str] = "window"
    #: True when a variant on a chromosome the file does not have is an error (a track
    #: that should cover the genome); False when such variants just get 0.
    missing_chromosome_is_error: ClassVar[bool] = False

    def __init__(self, **options):
        super().__init__(**options)
        self.last_info: dict[str, Any] = {}

    @classmethod
    def sniff(cls, path) -> bool:
        return False

    def prepare(self, path, chrom, pos, *, variants=None) -> None:
        return None

    def columns(self, path, *, variants=None) -> list[str]:  # pragma: no cover - interface
        raise NotImplementedError

    def track_channels(self, path) -> list[str]:
        return []

    def read(self, path, chrom, pos, *, window=256, variants=None):  # pragma: no cover - interface
        raise NotImplementedError

    def read_track(self, path, chrom, pos, *, window=256, variants=None):
        import numpy as np

        return np.zeros((len(pos), int(window), 0), dtype=np.float32)

    def extract(self, path, chrom, pos, *, window=256, track_window=256, variants=None):
        """(scalar features, track or None) in one call; sources that can share work
        between the two override this."""
        scalar = self.read(path, chrom, pos, window=window, variants=variants)
        track = None
        if self.track_channels(path):
            track = self.read_track(path, chrom, pos, window=track_window, variants=variants)
        return scalar, track
