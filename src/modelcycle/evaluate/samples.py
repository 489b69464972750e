"""Dataset versions as evaluation reads and writes them (see ``modelcycle.store.datasets``)."""

from modelcycle.store.datasets import (
    DATASET_NAME_PATTERN,
    MAX_SAMPLES_PER_VERSION,
    EvalSample,
    SampleIn,
    dataset_row,
    load_samples,
    parse_ref,
    resolve_version,
    version_hash,
    version_ref,
    write_version,
)

__all__ = [
    "DATASET_NAME_PATTERN",
    "MAX_SAMPLES_PER_VERSION",
    "EvalSample",
    "SampleIn",
    "dataset_row",
    "load_samples",
    "parse_ref",
    "resolve_version",
    "version_hash",
    "version_ref",
    "write_version",
]
