// Source text, locations and diagnostics of the nyto frontend.
//
// Positions are counted in code points: lines and columns from 1, a tab counts as one column
// (the caret line copies tabs so carets stay aligned in any terminal).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace nyto::frontend {

/// A stretch of source text: 1-based line and column of its first character, and its length in
/// code points (it may run past the end of its line; rendering clips it there).
struct Span {
  int line = 1;
  int col = 1;
  int length = 1;
};

/// One compile-time (or bind-time) error: a stable code such as "E0103", where, and one sentence
/// saying what is wrong and how to mend it.
struct Diagnostic {
  std::string code;
  Span span;
  std::string message;
};

/// A script: its file name (used in diagnostics only) and its text (UTF-8; invalid bytes are
/// tolerated and count as one column each).
class Source {
 public:
  Source(std::string filename, std::string text);

  const std::string& filename() const { return filename_; }
  const std::string& text() const { return text_; }

  /// Number of lines (a final line without newline counts; an empty text has one line). A line
  /// ends at "\n", "\r\n" or a lone "\r".
  int line_count() const { return int(line_starts_.size()); }
  /// The text of line `line` (1-based) without its line terminator; empty when out of range.
  std::string_view line_text(int line) const;
  /// Line and column of code point `offset` (0-based, as ANTLR's token indices count them).
  Span span_at(size_t offset, int length = 1) const;
  /// A span covering code points [begin, end) (length at least 1).
  Span span_of(size_t begin, size_t end) const;
  /// The text as code points with invalid UTF-8 bytes replaced by U+FFFD and a lone "\r" by "\n",
  /// re-encoded as valid UTF-8: what the lexer reads, so that its code point indices and line
  /// numbers match this Source.
  const std::string& sanitized() const { return sanitized_; }
  /// Code point `offset` (U+FFFD for an invalid byte, 0 past the end).
  char32_t code_point(size_t offset) const;
  /// Code point offset of the end of the text.
  size_t size() const { return code_points_.size(); }

 private:
  std::string filename_;
  std::string text_;
  std::string sanitized_;
  std::u32string code_points_;
  std::vector<size_t> line_starts_;       // code point offset of each line's first character
  std::vector<size_t> line_byte_starts_;  // byte offset of each line's first character
};

/// `text` with every control character but tab shown as its Control Pictures symbol (NUL as U+2400
/// "␀", ESC as U+241B, DEL as U+2421): one code point for one, so columns and carets still line
/// up, and a diagnostic never carries a NUL (which would cut it short) or a raw CR to a terminal.
std::string visible(std::string_view text);

/// Renders one diagnostic exactly as docs/language.md specifies (control characters made visible):
///   file:line:col: error[CODE]: message
///   <the source line>
///   <spaces or tabs>^~~~
std::string render(const Source& source, const Diagnostic& diagnostic);

/// Renders every diagnostic, one after the other (each ends with a newline).
std::string render_all(const Source& source, const std::vector<Diagnostic>& diagnostics);

/// Levenshtein distance, for "did you mean" suggestions.
size_t edit_distance(std::string_view a, std::string_view b);

/// The candidate closest to `name` when it is close enough to be a plausible typo, else "".
std::string closest_match(std::string_view name, const std::vector<std::string>& candidates);

}  // namespace nyto::frontend
