"""The LA data: reading the cases and the split (cases), augmentation (augment), the two-stream
sampler (sampler), training batches (batches), volumes in other formats (volumes), and getting the
data: download (with fetch, the shared HTTP machinery) and preprocess (raw scans -> h5).

``from camlkit import data`` gives the names a notebook uses; each module also stands alone.
"""

from camlkit.data.augment import CROP_RULES, Compose, RandomCrop, RandomRotFlip, pad_widths, train_transform
from camlkit.data.cases import (
                                CASE_FILE,
                                CASES_FOLDER,
                                LADataset,
                                LASplit,
                                case_path,
                                check_image,
                                check_label,
                                load_split,
                                open_h5,
                                read_case,
                                read_h5_image,
                                read_list,
                                resample,
                                resample_label,
                                scaled_size,
                                zscore,
)
from camlkit.data.sampler import TwoStreamBatchSampler, seed_worker

__all__ = ["CASE_FILE", "CASES_FOLDER", "CROP_RULES", "Compose", "LADataset", "LASplit", "RandomCrop",
           "RandomRotFlip", "TwoStreamBatchSampler", "case_path", "check_image", "check_label",
           "load_split", "open_h5", "pad_widths", "read_case", "read_h5_image", "read_list", "resample",
           "resample_label", "scaled_size", "seed_worker", "train_transform", "zscore"]
