// Per-member vectors (one number per swarm member, nyto::Value(std::vector<double>)) read from
// files: `nyto run --load f=FILE` and the REPL's `:load f FILE` take a 1-D tensor saved by
// Python's torch.save. From text, they are parsed by numbers_error (cli/Parse.h).
#pragma once

#include <string>
#include <vector>

namespace nyto::cli {

/// The values of the 1-D tensor that torch.save wrote to `path` (a file for which
/// nyto::is_pickle_archive holds), of any floating or integer dtype,
/// converted to double. Throws IOError naming the file when it cannot be read or is damaged (every
/// tensor is checked against the data the file holds, nyto::load_pickle_checked); BindError when
/// it holds anything else: a tensor of another shape or of a bool or complex dtype, or a value
/// that is not a tensor (a state_dict, a list).
std::vector<double> load_vector_file(const std::string& path);

}  // namespace nyto::cli
