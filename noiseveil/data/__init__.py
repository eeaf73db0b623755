"""Image datasets and image files for noiseveil.

`load_dataset(name)` returns an `ImageDataset` of uint8 channels-last arrays from the shared data
bundle (see `data_dir()`) or from the datasets' official formats; slow decodes are cached in
`cache_dir()`. `to_tensor` / `to_uint8` convert to and from float32 NCHW tensors.
"""

from .bundle import DATASETS, data_dir, load_dataset
from .cache import cache_dir
from .dataset import ImageDataset, fixed_subset
from .errors import DataError
from .images import PHOTOS, load_image_folder, load_photos, non_image_files, read_image, same_size_batch
from .tensors import to_tensor, to_uint8

__all__ = [
    "DATASETS",
    "PHOTOS",
    "load_photos",
    "same_size_batch",
    "DataError",
    "ImageDataset",
    "cache_dir",
    "data_dir",
    "fixed_subset",
    "load_dataset",
    "load_image_folder",
    "non_image_files",
    "read_image",
    "to_tensor",
    "to_uint8",
]
