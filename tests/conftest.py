import os

import torch

# The Triton kernels run on the CPU through Triton's interpreter, which must be switched on before
# triton is first imported (lightning imports it), so here, before any test module loads.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    # Tiny test models gain nothing from threads, and on a busy 2-core machine OpenMP spinning makes
    # them many times slower (measured: a 100-step test took 33 s with 2 threads and 0.8 s with 1
    # while a benchmark ran).
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def bert_dir(tmp_path_factory):
    """A tiny BERT saved as a Hugging Face model directory (helpers/tiny_bert.py); needs transformers."""
    pytest.importorskip("transformers")
    from helpers.tiny_bert import save_tiny_bert

    return save_tiny_bert(tmp_path_factory.mktemp("tiny_bert"))
