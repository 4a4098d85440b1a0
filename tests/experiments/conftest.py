"""Pin the code hash (part of every run key) for the whole session and its child processes: a test that
splits one sweep across processes must not see two hashes because another file of the tree changed meanwhile."""
import os

import pytest

from archlab.experiments.spec.identity import CODE_HASH_ENV, compute_code_hash


@pytest.fixture(autouse=True, scope="session")
def _pinned_code_hash():
    old = os.environ.get(CODE_HASH_ENV)
    os.environ[CODE_HASH_ENV] = compute_code_hash()
    yield
    if old is None:
        os.environ.pop(CODE_HASH_ENV, None)
    else:
        os.environ[CODE_HASH_ENV] = old
