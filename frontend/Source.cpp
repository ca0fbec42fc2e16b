#include "frontend/Source.h"

#include <algorithm>

namespace nyto::frontend {

namespace {

// Decodes one UTF-8 sequence at `i`; an invalid or truncated sequence yields U+FFFD and
// consumes one byte, so every byte belongs to exactly one code point.
char32_t decode(const std::string& s, size_t& i) {
  unsigned char c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) {
    ++i;
    return c;
  }
  int n = c >= 0xF0 && c <= 0xF4 ? 3 : c >= 0xE0 && c < 0xF0 ? 2 : c >= 0xC2 && c < 0xE0 ? 1 : -1;
  if (n < 0 || i + size_t(n) >= s.size()) {
    ++i;
    return 0xFFFD;
  }
  char32_t cp = c & (0x3F >> n);
  for (int k = 1; k <= n; ++k) {
    unsigned char d = static_cast<unsigned char>(s[i + k]);
    if ((d & 0xC0) != 0x80) {
      ++i;
      return 0xFFFD;
    }
    cp = (cp << 6) | (d & 0x3F);
  }
  // Overlong forms and surrogates are invalid too.
  if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
      (cp >= 0xD800 && cp <= 0xDFFF)) {
    ++i;
    return 0xFFFD;
  }
  i += size_t(n) + 1;
  return cp;
}

void encode(char32_t cp, std::string& out) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18));
    out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  }
}

}  // namespace

Source::Source(std::string filename, std::string text)
    : filename_(std::move(filename)), text_(std::move(text)) {
  code_points_.reserve(text_.size());
  sanitized_.reserve(text_.size());
  line_starts_.push_back(0);
  line_byte_starts_.push_back(0);
  size_t i = 0;
  while (i < text_.size()) {
    char32_t cp = decode(text_, i);
    code_points_.push_back(cp);
    // A line ends at "\n", "\r\n" or a lone "\r" (old Mac files). The lexer reads a lone "\r" as
    // "\n" (one code point for one, so offsets stay put), and counts lines as this Source does.
    bool lone_cr = cp == U'\r' && (i >= text_.size() || text_[i] != '\n');
    encode(lone_cr ? U'\n' : cp, sanitized_);
    if (cp == U'\n' || lone_cr) {
      line_starts_.push_back(code_points_.size());
      line_byte_starts_.push_back(i);
    }
  }
}

std::string_view Source::line_text(int line) const {
  if (line < 1 || line > line_count()) return {};
  std::string_view v(text_);
  v = v.substr(line_byte_starts_[line - 1]);
  return v.substr(0, v.find_first_of("\r\n"));
}

std::string visible(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    unsigned char u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\t') || u == 0x7F)
      encode(u == 0x7F ? U'\u2421' : char32_t(0x2400 + u), out);  // U+2400 SYMBOL FOR NULL ...
    else
      out += c;
  }
  return out;
}

Span Source::span_at(size_t offset, int length) const {
  offset = std::min(offset, code_points_.size());
  auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), offset);
  int line = int(it - line_starts_.begin());
  return Span{line, int(offset - line_starts_[line - 1]) + 1, std::max(length, 1)};
}

Span Source::span_of(size_t begin, size_t end) const {
  return span_at(begin, end > begin ? int(end - begin) : 1);
}

char32_t Source::code_point(size_t offset) const {
  return offset < code_points_.size() ? code_points_[offset] : 0;
}

std::string render(const Source& source, const Diagnostic& d) {
  std::string out = visible(source.filename()) + ":" + std::to_string(d.span.line) + ":" +
                    std::to_string(d.span.col) + ": error[" + d.code + "]: " + visible(d.message) +
                    "\n";
  std::string line(source.line_text(d.span.line));
  out += visible(line);
  out += "\n";
  // Walk the line by code points: tabs are copied so the caret lines up whatever the tab width.
  Source line_source("", line);
  size_t n = line_source.size();
  size_t col0 = size_t(std::max(d.span.col, 1) - 1);
  for (size_t k = 0; k < col0; ++k) out += k < n && line_source.code_point(k) == U'\t' ? '\t' : ' ';
  out += '^';
  // Clip to the end of the line; a span that starts at or past it (a newline, the end of input)
  // shows a lone caret.
  size_t len = size_t(std::max(d.span.length, 1));
  size_t end = std::min(col0 + len, std::max(n, col0 + 1));
  for (size_t k = col0 + 1; k < end; ++k) out += '~';
  out += "\n";
  return out;
}

std::string render_all(const Source& source, const std::vector<Diagnostic>& diagnostics) {
  std::string out;
  for (const Diagnostic& d : diagnostics) out += render(source, d);
  return out;
}

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

std::string closest_match(std::string_view name, const std::vector<std::string>& candidates) {
  // A typo is at most a third of the word (at least one edit), and never the whole word.
  size_t limit = std::max<size_t>(1, name.size() / 3);
  std::string best;
  size_t best_d = limit + 1;
  for (const std::string& c : candidates) {
    if (c == name) continue;
    size_t d = edit_distance(name, c);
    if (d < best_d && d < std::max(name.size(), c.size())) {
      best_d = d;
      best = c;
    }
  }
  return best;
}

}  // namespace nyto::frontend
