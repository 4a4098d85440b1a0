"""Data: tokenizers, shipped corpora, user text, token caches and LM batching."""
from __future__ import annotations

from archlab.data.corpora import (  # noqa: F401
    CorpusError,
    bible_pairs,
    load_corpus,
    read_text,
    shakespeare_text,
    shakespeare_works,
    source_classification,
)
from archlab.data.lm_data import LMBatches, eval_batches, token_ids_cached, train_val_split  # noqa: F401
from archlab.data.tokenizers import (  # noqa: F401
    BPETokenizer,
    CharTokenizer,
    TokenizerError,
    load_tokenizer,
)
