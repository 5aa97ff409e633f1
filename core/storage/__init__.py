"""How Graftzoo writes to disk: atomic writes, checksummed cache files, run locks, and the sweeper.

- ``atomic``: the one temp-file-then-rename helper every writer uses, and the
  translation of full-disk / read-only errors into one clear ``StorageError``.
- ``checked``: cache files (converted weights, features) with a checksum record
  checked on every read; a damaged entry is removed and rebuilt, never used.
- ``tensorfile``: safetensors written tensor by tensor from the tensors' memory (no bytes copy).
- ``locks``: an exclusive, non-waiting lock per run directory that names its holder.
- ``sweep``: what ``graft cache gc`` removes and ``graft cache verify`` re-hashes.
"""
