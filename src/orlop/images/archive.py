"""Image archives: `docker save` / `docker load`, and import of a root filesystem tar.

    save     archive_save: what Docker 25+ writes, a docker-save archive (manifest.json,
             repositories) that is an OCI image layout too (oci-layout, index.json with the
             names as annotations, blobs/sha256/...), each layer stored once, uncompressed.
    load     archive_load: docker-save archives (old `<id>/layer.tar` ones and new ones) and
             plain OCI layouts (`oci-archive`: skopeo, podman, buildah), gzip, zstd, bzip2 or
             xz compressed or not; read in one pass (archive_tar) into the content store,
             checked, and named only at the end: a bad or hostile archive (absolute paths,
             `..`, links out of it, blobs not matching their digest) names nothing.
    import   importer: a rootfs tar as a one-layer image (`docker import`).

Formats shared by all three (media types, annotations, the manifest Docker writes) are in
archive_format.
"""

from orlop.images.archive_format import ArchiveError
from orlop.images.archive_load import Loaded, load
from orlop.images.archive_save import save

__all__ = ["ArchiveError", "Loaded", "load", "save"]
