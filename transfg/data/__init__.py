"""Datasets as they ship, the official transforms, and a deterministic pipeline for both
frameworks: `readers` (one per format), `transforms` (PIL + numpy), `pipeline` (order and
augmentation from seeds), `fingerprint` (provenance), `bundled` (the default data set)."""
