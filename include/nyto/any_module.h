// Particles of models that have no C++ class: loaded from a nyto checkpoint or from a TorchScript
// archive saved by Python (`torch.jit.save`), and saved back in the same format.
//
//   auto a = nyto::load_particle("a.pt");          // TorchScript or nyto checkpoint
//   auto b = nyto::to_species(a, nyto::load_particle("b.pt"));
//   auto merged = 0.5 * a + 0.5 * b;
//   nyto::save_particle(merged, "merged.pt");      // loadable in Python by torch.jit.load
//
// Such a particle's module is a generic torch::nn::Cloneable module (a tree of submodules named
// after the dotted parameter paths) holding the file's parameters and buffers, so species,
// ParamConfig, flat storage, clone() and rules work as for any C++ module. A particle loaded from
// TorchScript keeps the torch::jit::Module as a template: its parameters are the very tensors of
// the particle (they view the flat storage), and saving writes a copy of the template with the
// particle's parameter and buffer values, so the model's code and other attributes survive.
// Every particle built from it (clone(), operations, rule outputs) keeps the template too.
// Tensors are loaded on the CPU, with the dtypes of the file, each checked against the data the
// file holds for it before use (load_module_checked, <nyto/checked_load.h>).
#pragma once

#include <nyto/swarm.h>

#include <string>
#include <vector>

namespace torch::jit {
struct Module;
}

namespace nyto {

/// A file format for particles.
enum class Format {
  Nyto,         ///< nyto checkpoint (AnyParticle::save / AnySwarm::save)
  TorchScript,  ///< TorchScript archive (torch.jit.save / torch::jit::Module::save)
};

/// What a file holds.
struct FileKind {
  Format format = Format::Nyto;
  bool swarm = false;  ///< a nyto swarm checkpoint (AnySwarm::save); never for TorchScript
};

/// Inspects `path` (a regular file). Throws IOError if it is missing, unreadable, corrupt or
/// neither a nyto checkpoint nor a TorchScript archive.
FileKind inspect_file(const std::string& path);

/// Loads a particle from a nyto particle checkpoint or a TorchScript archive (auto-detected) as
/// the first particle of a new species. Throws IOError (missing, corrupt, a swarm checkpoint,
/// a TorchScript module without parameters).
AnyParticle load_particle(const std::string& path);

/// Loads a swarm: a directory of particle files of one structure (every regular file whose name
/// does not start with '.', sorted by name; member i is the i-th file), or a nyto swarm
/// checkpoint. With `names`, receives the member file names (for a checkpoint: empty). A directory
/// is read one file at a time into the swarm's storage (memory: the swarm and one file), of the
/// species of the first of `like` whose structure its files have (else a new one). Throws
/// IOError (missing, empty directory, a bad file), ShapeError (files of different structures).
AnySwarm load_swarm(const std::string& path, std::vector<std::string>* names = nullptr,
                    const std::vector<AnyParticle>& like = {});

/// The member files of the swarm directory `dir`, as load_swarm reads them: every regular file
/// whose name does not start with '.', sorted by name. Throws IOError (not a readable directory,
/// no such file).
std::vector<std::string> swarm_member_files(const std::string& dir);

/// Members [begin, end) of the swarm directory `dir` whose member files are `files` (as
/// swarm_member_files(dir) gave them, listed once for all ranges): member r of the result is file
/// begin + r, read as load_swarm reads a directory, one file at a time into the swarm's storage,
/// of the species of the first of `like` whose structure the files have. For a swarm too big to
/// hold at once (`nyto run` holds a batch of members at a time). `member0`: file 0 as loaded
/// before (a member of an earlier range), which every file must match in structure, as
/// load_swarm requires (without it: the range's first file). Throws as load_swarm (a ShapeError
/// names file 0 and the file that differs); IOError for a range outside [0, files] or an empty one.
AnySwarm load_swarm_members(const std::string& dir, const std::vector<std::string>& files, int64_t begin,
                            int64_t end, const std::vector<AnyParticle>& like = {},
                            const AnyParticle* member0 = nullptr);

/// What one path holds: a particle, or a swarm.
struct LoadedModels {
  AnyParticle particle;  ///< defined() when the path is a particle file
  AnySwarm swarm;        ///< size() > 0 when the path is a swarm
  bool swarm_file = false;           ///< the swarm is a nyto swarm checkpoint, not a directory
  std::vector<std::string> members;  ///< the member file names of a swarm directory
  bool is_swarm() const { return swarm.size() > 0; }
};

/// Loads whatever `path` holds, reading each file once: a directory or a nyto swarm checkpoint
/// gives a swarm (as load_swarm, with `like`), any other file a particle (as load_particle).
/// Throws as they do.
LoadedModels load_models(const std::string& path, const std::vector<AnyParticle>& like = {});

/// The format a particle is saved in by default: TorchScript when it carries a TorchScript
/// template (loaded from TorchScript, or built from such a particle), else Nyto.
Format format_of(const AnyParticle& particle);

/// Writes `particle` to `path` with io::write_file (a temporary file beside it, renamed over it). Nyto: a checkpoint as
/// AnyParticle::save. TorchScript: a copy of the particle's TorchScript template with the
/// particle's parameter and buffer values, loadable by Python's torch.jit.load. Throws IOError if
/// the file cannot be written, or for TorchScript when the particle has no template.
void save_particle(const AnyParticle& particle, const std::string& path, Format format);
inline void save_particle(const AnyParticle& particle, const std::string& path) {
  save_particle(particle, path, format_of(particle));
}

/// A TorchScript module computing with `particle`'s values: a shallow copy of its TorchScript
/// template (code and other attributes shared) whose parameters and buffers are fresh copies of
/// the particle's. Include <torch/script.h> to use the result. Throws Error when the particle has
/// no TorchScript template.
torch::jit::Module script_module(const AnyParticle& particle);

/// Writes member i of `swarm` to `dir`/`names[i]` with save_particle (default names
/// member-000.pt, member-001.pt, ...) as one commit (nyto/io.h): the members are written to a new
/// directory beside `dir`, which then replaces `dir` as a whole, so a failure leaves `dir` as it
/// was and no file of an older swarm remains. An existing `dir` must be a swarm directory (see
/// check_swarm_dir_target). Throws IOError; ShapeError if `names` is given with another length
/// than the swarm size.
void save_swarm_dir(const AnySwarm& swarm, const std::string& dir,
                    const std::vector<std::string>& names, Format format);

/// Throws IOError unless a swarm may be saved to the directory `dir` by save_swarm_dir: `dir`
/// does not exist, or it is a directory holding only model files (nyto checkpoints or TorchScript
/// archives, e.g. a swarm saved before), all of which the new swarm replaces. A directory holding
/// anything else (another file, a subdirectory, a hidden file) is refused, naming the entry.
void check_swarm_dir_target(const std::string& dir);

/// Whether two particles have the same parameter paths, shapes and dtypes, in the same order.
bool same_structure(const AnyParticle& a, const AnyParticle& b);

/// `p`'s values (parameters and buffers) and TorchScript template in a new particle of `rep`'s
/// species, so that rules can combine it with `rep`. Throws ShapeError naming the first
/// differing parameter when the structures differ.
AnyParticle to_species(const AnyParticle& rep, const AnyParticle& p);
/// The same for every member of a swarm: a new swarm of `rep`'s species.
AnySwarm to_species(const AnyParticle& rep, const AnySwarm& s);

}  // namespace nyto
