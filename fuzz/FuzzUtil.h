// Shared by the libFuzzer targets of fuzz/: a private scratch directory, writing an input to a
// file, building a LibTorch zip archive from an input, and the rule for exceptions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <exception>
#include <string>

namespace nyto::fuzz {

/// A directory of this process (under $TMPDIR or /tmp), created on first use, removed at exit.
const std::string& scratch_dir();

/// Writes `size` bytes to scratch_dir()/name and returns the path.
std::string write_file(const std::string& name, const uint8_t* data, size_t size);

/// Writes `data` to scratch_dir()/name as a file a LibTorch loader reads. An input that starts
/// with "PK" (a zip archive) is written as it is; any other is read as records
///   [u8 name length][name][u32 little-endian data length][data]...
/// (lengths clamped to what remains) and written as a zip archive through LibTorch's own
/// PyTorchStreamWriter, so mutations reach the archive's contents (pickles, tensor data)
/// instead of failing its checksums. fuzz/make_seeds.py turns archives into records.
std::string write_archive(const std::string& name, const uint8_t* data, size_t size);

/// A valid (Fashion-)MNIST IDX file: `n` 28x28 images (magic 2051), or `n` labels in [0, 10)
/// (magic 2049).
std::string idx_file(bool images, uint32_t n);

/// Prints `what` (and the input's size) and aborts: libFuzzer saves the input as a crash.
[[noreturn]] void fail(const std::string& what);

/// For an exception that escaped where only nyto::Error (or a subclass) may: fails (an
/// "internal error" a user would see for bad input), unless NYTO_FUZZ_ALLOW_INTERNAL=1 is set, which
/// lets a run look past known defects for memory errors (such exceptions are then counted and
/// printed once each 1000).
void internal_error(const std::exception& e, const char* where);

}  // namespace nyto::fuzz
