"""Hard limits on what an upload may contain: one place, documented in the README ("Limits").

Every request is hostile: these bound the memory and CPU one archive or one form can
cost, whatever its headers claim. The upload size itself is a setting
(``max_upload_bytes``); these are fixed.
"""

from __future__ import annotations

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB

# --- archives (wheels, sdists) ---------------------------------------------------------
# METADATA / PKG-INFO, counted while decompressing (never trusting the header's size).
MAX_CORE_METADATA_BYTES = 1 * MIB
# Members of one archive (zip central directory entries, tar members scanned).
MAX_ARCHIVE_MEMBERS = 50_000
# Decompressed bytes a .tar.gz scan may go through before finding PKG-INFO.
MAX_ARCHIVE_SCAN_BYTES = 1 * GIB
# One tar header record (pax extended header, GNU long name): read whole by tarfile.
MAX_TAR_HEADER_BYTES = 1 * MIB
# LZMA dictionary a zip member may ask for (xz's largest preset uses 64 MiB).
MAX_LZMA_DICT_BYTES = 64 * MIB

# --- fields ----------------------------------------------------------------------------
MAX_FILENAME_LENGTH = 255
MAX_NAME_LENGTH = 128  # project name, form field and METADATA Name
MAX_VERSION_LENGTH = 128  # form field and METADATA Version, before parsing
MAX_SUMMARY_LENGTH = 512  # METADATA Summary (PyPI's limit)
MAX_REQUIRES_PYTHON_LENGTH = 256  # METADATA Requires-Python
