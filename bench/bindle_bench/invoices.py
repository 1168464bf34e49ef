"""Invoice documents: the transfers' invoices and the corpus of the rate and query phases."""

from __future__ import annotations

import hashlib
from typing import Any, Final

import tomli_w

QUERY_GROUPS: Final = 100  # each `grpNNx` name term matches 1 / QUERY_GROUPS of the corpus
QUERY_RANGE: Final = ">=1.2.0, <2.0.0"


def invoice_toml(name: str, version: str, sha256: str, size: int, label_name: str) -> bytes:
    document: dict[str, Any] = {
        "bindleVersion": "1.0.0",
        "bindle": {"name": name, "version": version},
        "parcel": [
            {
                "label": {
                    "sha256": sha256,
                    "mediaType": "application/octet-stream",
                    "name": label_name,
                    "size": size,
                }
            }
        ],
    }
    return tomli_w.dumps(document).encode()


def corpus_name(index: int) -> str:
    return f"bench.example/grp{index % QUERY_GROUPS:02d}x/pkg{index}"


def corpus_version(index: int) -> str:
    return f"{index % 3}.{(index // 3) % 5}.{(index // 15) % 10}"


def corpus_in_range(index: int) -> bool:
    """Whether corpus_version(index) satisfies QUERY_RANGE (>=1.2.0, <2.0.0)."""
    return index % 3 == 1 and (index // 3) % 5 >= 2


def corpus_invoice(index: int) -> bytes:
    sha256 = hashlib.sha256(f"bench parcel {index}".encode()).hexdigest()
    return invoice_toml(corpus_name(index), corpus_version(index), sha256, 1024, f"p{index}.bin")
