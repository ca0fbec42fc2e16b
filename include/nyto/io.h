// Writing files safely. Every file nyto writes goes through write_file: the bytes go to a new
// temporary file beside the target (a hidden ".NAME.nyto-tmp-..." entry), every OS call is checked,
// the file is flushed to disk, and only then renamed over the target, so a failure (full disk, I/O
// error, a kill) never leaves a partial file in the target's place. Several outputs written by one
// command are staged and committed together with a Commit: all are put in place, or none.
//
//   nyto::io::write_file("notes.txt", [](nyto::io::FileWriter& w) { w.write("hello\n"); });
//
//   nyto::io::Commit c;
//   nyto::save_particle(a, c.stage("a.pt"));          // any writer that takes a path
//   nyto::save_swarm_dir(s, c.stage("swarm", true));  // a directory, replaced as a whole
//   c.commit();                                       // both in place, or neither
//
// Fault injection, for tests: the environment variable NYTO_FAULT (read once, at the first write)
// or testing::set_fault makes a chosen OS call fail, e.g. NYTO_FAULT=write:enospc@3 (see set_fault).
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

namespace nyto::io {

/// An open file being written by write_file. Writes never throw: the first OS error is kept,
/// later writes are skipped, and write_file reports the error once the writer returns. So the
/// writer function handed to LibTorch never fails inside LibTorch (whose archive writer aborts
/// the process when a write fails while it finishes an archive).
class FileWriter {
 public:
  FileWriter(const FileWriter&) = delete;
  FileWriter& operator=(const FileWriter&) = delete;

  /// Appends `n` bytes (a short write is resumed; an error is kept, see the class comment).
  void write(const void* data, size_t n) noexcept;
  void write(const std::string& text) noexcept { write(text.data(), text.size()); }

  /// A writer function for LibTorch: OutputArchive::save_to(w.function()),
  /// torch::jit::ExportModule(module, w.function()). It always reports every byte written.
  std::function<size_t(const void*, size_t)> function() noexcept;

  /// The OS error (errno) of the first failed call, 0 while none failed.
  int error() const noexcept { return err_; }

 private:
  friend void write_file(const std::string&, const std::function<void(FileWriter&)>&);
  explicit FileWriter(int fd) : fd_(fd) {}
  int fd_;
  int err_ = 0;
};

/// Writes the file `path` with `fill`: into a new temporary file beside it (with the mode of the
/// file it replaces, if any), flushed to disk (fsync), closed, then renamed over `path`.
/// Throws IOError "cannot write 'PATH': REASON" with the OS's reason (e.g. "No space left on
/// device", "No such file or directory" for a missing directory, "Is a directory"); an exception
/// thrown by `fill` is passed on unchanged. On any failure the temporary file is removed and
/// `path` is left as it was.
void write_file(const std::string& path, const std::function<void(FileWriter&)>& fill);

/// `path` as the user named it: a path in an entry staged by a Commit is shown in its target
/// (e.g. "swarm/member-000.pt" for a file in the staged directory of "swarm"); any other path as
/// it is. For messages about a file being written. Never throws.
std::string shown_path(std::string path);

/// True when `a` and `b` name the same file or directory: the same device and inode when both
/// exist, else the same path once made absolute and canonical (symbolic links, "." and ".."
/// resolved as far as the path exists; trailing '/' ignored). Never throws.
bool same_file(const std::string& a, const std::string& b);

/// Checks, before any work is done, that `path` could be written later: the nearest existing
/// directory above it (its parent for a file) accepts new entries for this user. Does not look at
/// `path` itself (its kind is the caller's concern) and creates nothing. Throws IOError "cannot
/// write 'PATH': REASON" ("Permission denied", "Read-only file system", "Not a directory", and
/// "No such file or directory" when a file's parent directory is missing and `dir` is false).
void check_writable(const std::string& path, bool dir = false);

/// Outputs staged beside their targets and put in place together: all of them, or none.
///
/// Against errors the commit is all-or-nothing: if putting any output in place fails, the targets
/// already replaced get their old content back before commit() throws, and every temporary entry
/// is removed. Against a crash (power loss, SIGKILL) in the middle of commit() it is not: each
/// target is then either entirely old or entirely new, but some may be new and others old, and a
/// hidden ".NAME.nyto-tmp-..." entry beside a target may remain, holding either the new content
/// not yet in place or the old content already replaced.
class Commit {
 public:
  Commit();
  /// Removes every staged entry not committed (and, after a commit, the old contents). Never throws.
  ~Commit();
  Commit(const Commit&) = delete;
  Commit& operator=(const Commit&) = delete;

  /// Returns a temporary path beside `target` for its new content: a file that the caller writes
  /// (with write_file or any function built on it), or, with `dir`, a new empty directory (created
  /// now) that the caller fills; the directory replaces the target directory as a whole. Error
  /// messages of write_file name `target` (or `target`/NAME in a staged directory), never the
  /// temporary path. Throws IOError if `target` is already staged in this commit (the same file,
  /// under any spelling: see same_file), exists as the other kind (a directory where a file is
  /// staged, or the reverse), or the directory cannot be created.
  std::string stage(const std::string& target, bool dir = false);

  /// Puts every staged output in place, in the order staged, and syncs the directories. An
  /// existing target is swapped with its new content in one step (renameat2 RENAME_EXCHANGE, or
  /// moved aside first where the file system cannot swap) and its old content removed once every
  /// output is in place. Throws IOError "cannot write 'TARGET': REASON" after the rollback
  /// described above (if even the rollback fails, the message says where the old content is).
  void commit();

 private:
  struct Entry;
  std::vector<Entry> entries_;
  bool committed_ = false;
};

namespace testing {
/// Fault injection for tests: makes OS calls of write_file and Commit fail. `spec` is a
/// comma-separated list of OP:KIND[@N[+]] -- OP one of open, write, fsync, close, rename (a plain
/// rename), swap (the commit's exchange of a target with its new content); KIND one of enospc,
/// eio, edquot, eacces, erofs, exdev, einval (that errno; swap:einval makes the commit fall back to
/// moving the old content aside first), or short (write only: the call writes half its bytes,
/// which the writer must resume); @N: the N-th call of OP from now (default 1);
/// @N+: the N-th and every later one. "" clears it. NYTO_FAULT sets it at the first write of a
/// process. Throws nyto::Error for a malformed spec. Not thread-safe against concurrent writes.
void set_fault(const std::string& spec);
}  // namespace testing

}  // namespace nyto::io
