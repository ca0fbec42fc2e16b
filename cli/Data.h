// Image-classification data for `nyto train`: MNIST-format IDX files (Fashion-MNIST from Debian's
// dataset-fashion-mnist, or MNIST), gzipped or not.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

namespace nyto::cli {

/// Where Debian's dataset-fashion-mnist puts the files.
inline constexpr const char* kDefaultDataDir = "/usr/share/datasets/fashion-mnist";

struct ImageSet {
  at::Tensor images;  ///< [N, 1, 28, 28] float32, normalized by the training set's mean and std
  at::Tensor labels;  ///< [N] int64 in [0, 10)
  int64_t size() const { return labels.size(0); }
};

struct ImageData {
  ImageSet train;  ///< 60,000 images for (Fashion-)MNIST
  ImageSet test;   ///< 10,000 images
  std::string source;  ///< the directory read (for messages)
  uint64_t digest = 0;  ///< a hash of the four files' contents (the data set's identity)
};

/// Reads train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and
/// t10k-labels-idx1-ubyte from `dir`, each plain or with a .gz suffix. Gzipped files are
/// decompressed once (zlib) into a cache directory ($NYTO_CACHE_DIR, else $XDG_CACHE_HOME/nyto,
/// else ~/.cache/nyto) keyed by the files' path, size and time, written atomically.
/// Every file is checked against its IDX header (magic number, dimensions, 28x28 images, the
/// file's size), a split's image and label counts against each other, every label in [0, 10);
/// zlib's status is checked and a file that does not decompress completely is never cached.
/// Throws UsageError (exit 2) when `dir` or one of the files is missing, naming the path and
/// the Debian package; IOError (exit 1) for a corrupt or truncated file or a bad label, naming it.
ImageData load_image_data(const std::string& dir);

/// The classes named by `text`: "0-4", "5,7,9", "3" or a mix ("0-2,7"), sorted. Throws
/// UsageError (exit 2) naming `flag` for anything else, a class outside 0..9, an empty range or a
/// class named twice.
std::vector<int64_t> parse_classes(const std::string& flag, const std::string& text);

/// The images of `set` whose label is one of `classes` (in their order in `set`).
ImageSet select_classes(const ImageSet& set, const std::vector<int64_t>& classes);

}  // namespace nyto::cli
