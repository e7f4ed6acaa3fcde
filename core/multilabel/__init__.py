"""Multi-label text: several tags per text, from the upload's tag sets to per-tag thresholds and served tags."""
