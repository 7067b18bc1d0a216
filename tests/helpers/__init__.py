"""Helpers shared by every test package (imported as `from tests.helpers.<module> import name`).

    runs.py    the `nanoframe` command in-process (cli, one_error_line), a tiny model's flags (TINY),
               a small corpus (SHAKESPEAREISH), a run's losses
    ops.py     check_op / check_torch: one call builds float64 inputs, runs an op, checks its
               forward against NumPy, its gradients with nanoframe.testing.gradcheck, and torch parity
               (through fused.parity, the one torch comparison)
    fused.py   the fused-op form of the same checks on ndarrays: gradcheck (nanoframe.testing.gradcheck),
               parity with torch, composed_match (fused op == its primitive-op twin), rand
    mpi.py     mpiexec launches and their environment (needs_mpi skips without mpi4py / mpiexec)

SHARED_DATA is ../shared/data next to the clone (tiny shakespeare, Gutenberg books, GPT-2 BPE files,
Hugging Face test models); tests that need it skip when it is absent (the `shared_data` fixture
of tests/conftest.py does that for them).
"""
from pathlib import Path

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
