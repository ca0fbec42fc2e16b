// Text -> AST: runs the ANTLR lexer and parser on a Source and converts the parse tree.
#pragma once

#include <vector>

#include "frontend/Ast.h"
#include "frontend/Source.h"

namespace nyto::frontend {

/// Parses `source`. Syntax errors (codes E0001-E0004) are appended to `diagnostics`, all of them
/// up to a cap; the returned Program is complete only when none was added. Never throws for any
/// input text (only std::logic_error for a bug in nyto).
Program parse(const Source& source, std::vector<Diagnostic>& diagnostics);

}  // namespace nyto::frontend
