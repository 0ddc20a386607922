"""File readers: one module per format, each reading its source into memory or streaming it from disk.

    image_folder.py   class folders / train-val-test folders of images (photos)
    mask_folder.py    images + segmentation masks
    detection.py      images + boxes (COCO JSON, box CSV)
    npz.py            .npz of sequences (memory-mapped when streamed)
    csv_sequences.py  CSV of sequences (wide rows or long id,t,... tables)
    series_csv.py     CSV time series to forecast
    ts_format.py      sktime/UEA .ts files
    text_files.py     .txt, text CSV
    text_pairs.py     .tsv source<TAB>target pairs
    transcripts.py    file,transcript CSVs of images or WAVs
    video.py          clips as frame folders or .npy
    from_torch.py     your own torch.utils.data.Dataset
    arrays.py         sequence arrays shared by the npz, CSV and text readers (checks, memory-mapped rows)
    dense_stream.py   streamed images with per-pixel or box targets (shared by mask_folder and detection)

`gridseq.datasets.load(path)` picks the reader from the path.
"""
