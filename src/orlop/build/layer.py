"""A build step's layer: the changes in an overlay upper directory written as an OCI layer
tar (tarwrite.py: overlay whiteouts turned back into `.wh.` entries) and stored
gzip-compressed in the content store (images/layers.py).

The tar is deterministic (sorted names, the files' own metadata, PAX headers), so that the
same changes give the same diff ID.
"""

from __future__ import annotations

from orlop.images.content import ContentStore
from orlop.images.layers import GZIP_LAYER, LayerBlob, store_tar
from orlop.tarwrite import write_layer

__all__ = ["GZIP_LAYER", "LayerBlob", "store_layer", "write_tar"]


def write_tar(upper: str, out) -> None:
    """The upper directory's changes as a layer tar written to the binary file `out`."""
    write_layer(upper, out)


def store_layer(upper: str, content: ContentStore) -> LayerBlob:
    """Write the layer of `upper` into the content store; its diff ID and blob."""
    return store_tar(lambda out: write_layer(upper, out), content)
