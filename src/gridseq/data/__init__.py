"""Datasets: the data contract, built-in datasets, file readers, batching and augmentation.

    contract.py       Batch, Split, Dataset, DatasetInfo: what every reader and built-in returns
    partition.py      train/val/test splits (seeded, stratified) and label encoding
    padding.py        padding and collation of variable-length items; which steps are valid
    preprocessing.py  the preprocessing record (normalisation, views) and the one function applying it
    samplers.py       batch order: shuffled, length-bucketed, sharded across ranks
    stream.py         splits decoded on demand in DataLoader workers (StreamSplit), the decoded-item cache
    assemble.py       raw arrays -> a Dataset (splits divided, normalised, info filled in)
    prepare.py        new inputs prepared exactly like a model's training data (predict, serve)
    readers/          one module per file format, each in memory or streamed
    builtin/          one module per built-in dataset (or family), discovered: no list to edit
    augment/          on-the-fly augmentation, one module per kind of data, and the registry
    audio.py, series.py, vocab.py, text_clean.py, text_assemble.py, text_stream.py: the features, windows and
                      vocabularies that readers and built-ins share

To add a built-in, put a module in builtin/ with a loader decorated by `register_dataset`
(see builtin/__init__.py); `gridseq datasets` lists it from then on.
"""
