"""Corpora and DataModules."""

from lightning_hybrid.data.corpora import read_bytes, stdlib_dir
from lightning_hybrid.data.text import TextDataModule

__all__ = ["TextDataModule", "read_bytes", "stdlib_dir"]
