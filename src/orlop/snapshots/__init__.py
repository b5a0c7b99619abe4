"""Image layers on disk: unpack a layer tar (whiteouts converted, paths kept inside) into an
overlayfs snapshot; snapshots committed by chain ID, stacked into container root filesystems."""

from orlop.snapshots.overlay import (
    ACTIVE,
    COMMITTED,
    VIEW,
    Info,
    Mount,
    OverlaySnapshotter,
    SnapshotError,
    SnapshotExists,
    SnapshotNotFound,
    SnapshotStateError,
    Usage,
    chain_id,
    chain_ids,
    mount_all,
)
from orlop.snapshots.unpack import HostileLayer, LayerError, LayerStats, unpack_layer

__all__ = [
    "ACTIVE", "COMMITTED", "VIEW", "HostileLayer", "Info", "LayerError", "LayerStats", "Mount",
    "OverlaySnapshotter", "SnapshotError", "SnapshotExists", "SnapshotNotFound", "SnapshotStateError",
    "Usage", "chain_id", "chain_ids", "mount_all", "unpack_layer",
]
