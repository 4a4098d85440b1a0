"""Recount every preset and write the table the package ships (src/archlab/preset_index.json).

Run after adding a preset or changing archlab/models or archlab/nn (tests/models/test_preset_index.py says when):
    .venv/bin/python scripts/update_preset_index.py
"""
from __future__ import annotations

from archlab import preset_index
from archlab.models.preset_table import preset_table

if __name__ == "__main__":
    doc = preset_table()
    path = preset_index.write_shipped(doc)
    print(f"wrote {path}: {len(doc['presets'])} presets, fingerprint {doc['fingerprint'][:16]}")
