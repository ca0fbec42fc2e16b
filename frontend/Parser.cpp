// The ANTLR frontend, after google/cel-cpp parser/parser.cc: one class converts the parse tree,
// a custom error strategy words syntax errors for people and caps recovery, and the first parse
// runs in SLL mode with bail-out, falling back to full LL only when that fails.
#include "frontend/Parser.h"

#include "ir/Error.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <set>
#include <string_view>
#include <stdexcept>
#include <string>

#include "NytoLexer.h"
#include "NytoParser.h"
#include "antlr4-runtime.h"

namespace nyto::frontend {

namespace {

using grammar::NytoLexer;
using grammar::NytoParser;

// Past these the input is hostile or hopeless; we stop rather than spin or overflow the stack.
constexpr int kMaxSyntaxErrors = 20;
constexpr int kMaxRecoveries = 50;
constexpr int kMaxRuleDepth = 600;   // ANTLR rule frames (about 6 per parenthesis level)
constexpr int kMaxAstDepth = 1000;   // AST nesting levels (a chain a+b+c+... counts as one)

struct StopParsing {};

using ir::internal_error;

// Collects syntax diagnostics from the lexer, the parser and the tree converter.
class Collector {
 public:
  Collector(const Source& source, std::vector<Diagnostic>& out) : source_(source), out_(out) {}

  void add(const char* code, Span span, std::string message) {
    // The lexer dropped the bad character; what the parser then trips over on that line is an
    // echo of the same mistake.
    if (std::string_view(code) == "E0001" && lexer_error_lines_.count(span.line)) return;
    if (std::string_view(code) == "E0002") lexer_error_lines_.insert(span.line);
    if (count_ == kMaxSyntaxErrors) {
      out_.push_back({"E0004", span, "too many syntax errors; fix the ones above and try again"});
      ++count_;
      throw StopParsing{};
    }
    ++count_;
    out_.push_back({code, span, std::move(message)});
  }
  int count() const { return count_; }

  Span token_span(const antlr4::Token* t) const {
    if (t == nullptr) return source_.span_at(source_.size());
    if (t->getType() == antlr4::Token::EOF) return end_of_input();
    size_t begin = t->getStartIndex();
    size_t end = t->getStopIndex() + 1;
    if (begin > source_.size()) return end_of_input();  // conjured tokens carry no position
    return source_.span_of(begin, end > begin ? end : begin + 1);
  }

  // Just after the last visible character, so "unexpected end of input" points at the text
  // that was left unfinished rather than at an empty last line.
  Span end_of_input() const {
    size_t i = source_.size();
    while (i > 0) {
      char32_t c = source_.code_point(i - 1);
      if (c != U' ' && c != U'\t' && c != U'\n' && c != U'\r' && c != U'\f') break;
      --i;
    }
    return source_.span_at(i);
  }

  const Source& source() const { return source_; }

 private:
  const Source& source_;
  std::vector<Diagnostic>& out_;
  int count_ = 0;
  std::set<int> lexer_error_lines_;
};

std::string describe_char(char32_t c) {
  if (c >= 0x21 && c < 0x7F) return std::string("'") + char(c) + "'";
  char buf[16];
  std::snprintf(buf, sizeof buf, "U+%04X", unsigned(c));
  return buf;
}

class LexerErrors : public antlr4::BaseErrorListener {
 public:
  explicit LexerErrors(Collector& c) : c_(c) {}
  void syntaxError(antlr4::Recognizer* recognizer, antlr4::Token*, size_t, size_t,
                   const std::string&, std::exception_ptr) override {
    auto* lexer = dynamic_cast<antlr4::Lexer*>(recognizer);
    if (lexer == nullptr) internal_error("lexer error listener attached to a parser");
    size_t at = lexer->tokenStartCharIndex;
    char32_t ch = c_.source().code_point(at);
    std::string what = ch == 0xFFFD ? "invalid UTF-8 byte" : "character " + describe_char(ch);
    c_.add("E0002", c_.source().span_at(at),
           "unexpected " + what + "; nyto scripts use only names, numbers, operators, "
           "parentheses, brackets (x[i]), commas, ':' (state kinds), ';' and '#' comments");
  }

 private:
  Collector& c_;
};

class ParserErrors : public antlr4::BaseErrorListener {
 public:
  explicit ParserErrors(Collector& c) : c_(c) {}
  void syntaxError(antlr4::Recognizer*, antlr4::Token* offending, size_t, size_t,
                   const std::string& msg, std::exception_ptr) override {
    c_.add("E0001", c_.token_span(offending), msg);
  }

 private:
  Collector& c_;
};

std::string describe_token(const antlr4::Token* t) {
  if (t == nullptr) return "end of input";
  switch (t->getType()) {
    case antlr4::Token::EOF: return "end of input";
    case NytoParser::NEWLINE: return "end of line";
    case NytoParser::NAME: return "name '" + t->getText() + "'";
    case NytoParser::NUMBER: return "number '" + t->getText() + "'";
    case NytoParser::PARAM:
    case NytoParser::LET:
    case NytoParser::STATE: return "keyword '" + t->getText() + "'";
    default: return "'" + t->getText() + "'";
  }
}

// Words an expected-token set the way a person would: "an expression", "an operator", ...
// `after_operand`: the token before the error ends an operand, so an operator could continue the
// expression even though ANTLR, having already closed the expression rules, leaves it out.
std::string describe_expected(const antlr4::misc::IntervalSet& set,
                              const antlr4::dfa::Vocabulary& vocab, bool after_operand) {
  auto has = [&](size_t t) { return set.contains(t); };
  std::vector<std::string> parts;
  bool expression = has(NytoParser::NUMBER) && has(NytoParser::NAME) && has(NytoParser::LPAREN);
  if (expression) parts.push_back("an expression");
  const size_t ops[] = {NytoParser::POW, NytoParser::STAR, NytoParser::SLASH, NytoParser::PLUS,
                        NytoParser::MINUS, NytoParser::LT, NytoParser::LE, NytoParser::GT,
                        NytoParser::GE, NytoParser::EQ, NytoParser::NE};
  int op_count = 0;
  for (size_t o : ops) op_count += has(o) ? 1 : 0;
  bool end = has(NytoParser::NEWLINE) || has(NytoParser::SEMI) || has(antlr4::Token::EOF);
  bool operators = op_count >= 3 || (after_operand && !expression);
  if (operators) parts.push_back("an operator");
  for (ssize_t raw : set.toList()) {
    size_t t = size_t(raw);  // EOF is -1 in an IntervalSet and size_t(-1) as a Token type
    bool op = false;
    for (size_t o : ops) op = op || t == o;
    if ((op && (operators || expression)) || t == NytoParser::NEWLINE || t == NytoParser::SEMI ||
        t == antlr4::Token::EOF)
      continue;
    if (expression && (t == NytoParser::NUMBER || t == NytoParser::NAME || t == NytoParser::LPAREN))
      continue;
    if (t == NytoParser::NAME) parts.push_back("a name");
    else if (t == NytoParser::NUMBER) parts.push_back("a number");
    else parts.push_back(vocab.getDisplayName(t));
  }
  if (end) parts.push_back("the end of the statement");
  if (parts.empty()) return "";
  std::string out = parts[0];
  for (size_t i = 1; i < parts.size(); ++i) out += (i + 1 == parts.size() ? " or " : ", ") + parts[i];
  return out;
}

// DefaultErrorStrategy with our wording and a cap on how often it may recover.
class SyntaxErrorStrategy : public antlr4::DefaultErrorStrategy {
 public:
  void recover(antlr4::Parser* p, std::exception_ptr e) override {
    if (++recoveries_ > kMaxRecoveries) throw StopParsing{};
    DefaultErrorStrategy::recover(p, e);
  }
  antlr4::Token* recoverInline(antlr4::Parser* p) override {
    if (++recoveries_ > kMaxRecoveries) throw StopParsing{};
    return DefaultErrorStrategy::recoverInline(p);
  }

 protected:
  // Never delete a statement separator to repair an error: that glues the next statement onto
  // the broken one and misplaces every later error ("a = 1 +" NEWLINE "b = 2" would become
  // "a = 1 + b" and an error at "=").
  antlr4::Token* singleTokenDeletion(antlr4::Parser* p) override {
    size_t t = p->getCurrentToken()->getType();
    if (t == NytoParser::NEWLINE || t == NytoParser::SEMI) return nullptr;
    return DefaultErrorStrategy::singleTokenDeletion(p);
  }

  void reportNoViableAlternative(antlr4::Parser* p, const antlr4::NoViableAltException& e) override {
    report(p, e.getOffendingToken(), p->getExpectedTokens());
  }
  void reportInputMismatch(antlr4::Parser* p, const antlr4::InputMismatchException& e) override {
    report(p, e.getOffendingToken(), e.getExpectedTokens());
  }
  void reportFailedPredicate(antlr4::Parser* p, const antlr4::FailedPredicateException& e) override {
    report(p, e.getOffendingToken(), p->getExpectedTokens());
  }
  void reportUnwantedToken(antlr4::Parser* p) override {
    if (inErrorRecoveryMode(p)) return;
    beginErrorCondition(p);
    report(p, p->getCurrentToken(), getExpectedTokens(p));
  }
  void reportMissingToken(antlr4::Parser* p) override {
    if (inErrorRecoveryMode(p)) return;
    beginErrorCondition(p);
    antlr4::Token* t = p->getCurrentToken();
    std::string expected =
        describe_expected(getExpectedTokens(p), p->getVocabulary(), false);
    p->notifyErrorListeners(t, "missing " + expected + " before " + describe_token(t), nullptr);
  }

 private:
  void report(antlr4::Parser* p, antlr4::Token* t, const antlr4::misc::IntervalSet& expected) {
    std::string what = describe_expected(expected, p->getVocabulary(), after_operand(p, t));
    std::string msg = "unexpected " + describe_token(t);
    if (!what.empty()) msg += "; expected " + what;
    if (expected.contains(size_t(NytoParser::RPAREN))) msg += unclosed_paren_note(p, t);
    p->notifyErrorListeners(t, msg, nullptr);
  }

  static bool after_operand(antlr4::Parser* p, antlr4::Token* at) {
    if (at == nullptr || at->getTokenIndex() == 0 || at->getTokenIndex() > p->getTokenStream()->size())
      return false;
    size_t before = p->getTokenStream()->get(at->getTokenIndex() - 1)->getType();
    return before == NytoParser::NAME || before == NytoParser::NUMBER ||
           before == NytoParser::RPAREN || before == NytoParser::RBRACK;
  }

  // Newlines inside parentheses do not end a statement, so a forgotten ')' surfaces lines
  // later; name the parenthesis that is still open.
  static std::string unclosed_paren_note(antlr4::Parser* p, antlr4::Token* at) {
    if (at == nullptr) return "";
    antlr4::TokenStream* ts = p->getTokenStream();
    std::vector<antlr4::Token*> open;
    for (size_t i = 0; i < at->getTokenIndex() && i < ts->size(); ++i) {
      antlr4::Token* t = ts->get(i);
      if (t->getType() == NytoParser::LPAREN) open.push_back(t);
      if (t->getType() == NytoParser::RPAREN && !open.empty()) open.pop_back();
    }
    if (open.empty() || open.back()->getLine() == at->getLine()) return "";
    return " (the '(' on line " + std::to_string(open.back()->getLine()) + ", column " +
           std::to_string(open.back()->getCharPositionInLine() + 1) + " is not closed)";
  }

  int recoveries_ = 0;
};

// Stops runaway nesting before ANTLR's recursive descent exhausts the stack.
class DepthGuard : public antlr4::tree::ParseTreeListener {
 public:
  explicit DepthGuard(Collector& c) : c_(c) {}
  void enterEveryRule(antlr4::ParserRuleContext* ctx) override {
    if (++depth_ > kMaxRuleDepth) {
      c_.add("E0003", c_.token_span(ctx->getStart()),
             "expression nested too deeply; split it with 'let' statements");
      throw StopParsing{};
    }
  }
  void exitEveryRule(antlr4::ParserRuleContext*) override { --depth_; }
  void visitTerminal(antlr4::tree::TerminalNode*) override {}
  void visitErrorNode(antlr4::tree::ErrorNode*) override {}

 private:
  Collector& c_;
  int depth_ = 0;
};

// Collapses runs of separators (see the program rule in Nyto.g4): blank lines cost nothing.
class SeparatorCollapsingLexer : public NytoLexer {
 public:
  using NytoLexer::NytoLexer;
  std::unique_ptr<antlr4::Token> nextToken() override {
    for (;;) {
      std::unique_ptr<antlr4::Token> t = NytoLexer::nextToken();
      bool sep = t->getType() == NytoLexer::NEWLINE || t->getType() == NytoLexer::SEMI;
      if (sep && after_separator_) continue;
      after_separator_ = sep;
      return t;
    }
  }

 private:
  bool after_separator_ = true;  // the start of the input counts as one
};

// Parse tree -> AST. Only ever run on a tree without syntax errors.
class TreeConverter {
 public:
  explicit TreeConverter(Collector& c) : c_(c) {}

  Program convert(NytoParser::ProgramContext* ctx) {
    Program p;
    for (auto* s : ctx->statement()) p.statements.push_back(statement(s));
    return p;
  }

 private:
  Span span(antlr4::ParserRuleContext* ctx) const {
    size_t begin = ctx->getStart()->getStartIndex();
    size_t end = ctx->getStop() ? ctx->getStop()->getStopIndex() + 1 : begin + 1;
    return c_.source().span_of(begin, end);
  }
  Span span(antlr4::Token* t) const { return c_.token_span(t); }
  Span span(antlr4::tree::TerminalNode* n) const { return c_.token_span(need(n)->getSymbol()); }

  template <typename T>
  static T* need(T* p) {
    if (p == nullptr) internal_error("parse tree without errors has a missing child");
    return p;
  }

  Stmt statement(NytoParser::StatementContext* ctx) {
    Stmt s;
    s.span = span(ctx);
    if (auto* p = dynamic_cast<NytoParser::ParamStmtContext*>(ctx)) {
      s.kind = StmtKind::Param;
      s.name = need(p->NAME())->getText();
      s.name_span = span(p->NAME());
      s.value = expr(need(p->expr()));
    } else if (auto* l = dynamic_cast<NytoParser::LetStmtContext*>(ctx)) {
      s.kind = StmtKind::Let;
      s.name = need(l->NAME())->getText();
      s.name_span = span(l->NAME());
      s.value = expr(need(l->expr()));
    } else if (auto* st = dynamic_cast<NytoParser::StateStmtContext*>(ctx)) {
      s.kind = StmtKind::State;
      s.name = need(st->NAME(0))->getText();
      s.name_span = span(st->NAME(0));
      if (st->kind != nullptr) {
        s.state_kind = st->kind->getText();
        s.state_kind_span = span(st->kind);
      }
      s.value = expr(need(st->expr()));
    } else if (auto* a = dynamic_cast<NytoParser::AssignStmtContext*>(ctx)) {
      s.kind = StmtKind::Assign;
      s.name = need(a->NAME())->getText();
      s.name_span = span(a->NAME());
      s.value = expr(need(a->expr()));
    } else if (auto* e = dynamic_cast<NytoParser::ExprStmtContext*>(ctx)) {
      s.kind = StmtKind::Expr;
      s.value = expr(need(e->expr()));
    } else {
      internal_error("unknown statement alternative");
    }
    return s;
  }

  std::unique_ptr<Expr> binary(BinaryOp op, antlr4::Token* tok, std::unique_ptr<Expr> lhs,
                               std::unique_ptr<Expr> rhs, int depth) {
    check_depth(depth, tok);
    auto e = std::make_unique<Expr>();
    e->kind = ExprKind::Binary;
    e->binary_op = op;
    e->op_span = span(tok);
    // From the first character of the left operand to the last of the right one.
    Span a = lhs->span, b = rhs->span;
    e->span = a;
    if (b.line == a.line) e->span.length = b.col + b.length - a.col;
    else e->span.length = 1 << 20;  // runs to the end of the first line; rendering clips it
    e->args.push_back(std::move(lhs));
    e->args.push_back(std::move(rhs));
    return e;
  }

  void check_depth(int depth, antlr4::Token* at) {
    if (depth > kMaxAstDepth) {
      c_.add("E0003", span(at), "expression nested too deeply; split it with 'let' statements");
      throw StopParsing{};
    }
  }

  static BinaryOp binary_op(size_t type) {
    switch (type) {
      case NytoParser::PLUS: return BinaryOp::Add;
      case NytoParser::MINUS: return BinaryOp::Sub;
      case NytoParser::STAR: return BinaryOp::Mul;
      case NytoParser::SLASH: return BinaryOp::Div;
      case NytoParser::POW: return BinaryOp::Pow;
      case NytoParser::LT: return BinaryOp::Lt;
      case NytoParser::LE: return BinaryOp::Le;
      case NytoParser::GT: return BinaryOp::Gt;
      case NytoParser::GE: return BinaryOp::Ge;
      case NytoParser::EQ: return BinaryOp::Eq;
      case NytoParser::NE: return BinaryOp::Ne;
      default: internal_error("unknown binary operator token");
    }
  }

  // The three left-associative levels share one shape: operand (op operand)*.
  template <typename Operand, typename F>
  std::unique_ptr<Expr> chain(const std::vector<Operand*>& operands,
                              const std::vector<antlr4::Token*>& ops, F&& sub) {
    if (operands.empty() || operands.size() != ops.size() + 1)
      internal_error("operator chain with mismatched operands");
    // A chain is one level of nesting however long it is: semantic analysis walks it as a loop
    // (Sema.cpp, binary), so only its operands' own nesting counts toward kMaxAstDepth.
    std::unique_ptr<Expr> e = sub(operands[0]);
    int operand_depth = depth_of(*e);
    for (size_t i = 0; i < ops.size(); ++i) {
      auto rhs = sub(operands[i + 1]);
      operand_depth = std::max(operand_depth, depth_of(*rhs));
      e = binary(binary_op(ops[i]->getType()), ops[i], std::move(e), std::move(rhs), operand_depth + 1);
      e->nesting = operand_depth + 1;
    }
    return e;
  }

  static int depth_of(const Expr& e) { return e.nesting; }
  void set_depth(Expr& e, int d, antlr4::Token* at) {
    check_depth(d, at);
    e.nesting = d;
  }

  std::unique_ptr<Expr> expr(NytoParser::ExprContext* ctx) {
    return chain(ctx->additive(), ctx->op, [&](auto* a) { return additive(a); });
  }
  std::unique_ptr<Expr> additive(NytoParser::AdditiveContext* ctx) {
    return chain(ctx->multiplicative(), ctx->op, [&](auto* m) { return multiplicative(m); });
  }
  std::unique_ptr<Expr> multiplicative(NytoParser::MultiplicativeContext* ctx) {
    return chain(ctx->unary(), ctx->op, [&](auto* u) { return unary(u); });
  }

  std::unique_ptr<Expr> unary(NytoParser::UnaryContext* ctx) {
    if (ctx->power()) return power(ctx->power());
    auto e = std::make_unique<Expr>();
    e->kind = ExprKind::Unary;
    e->unary_op = need(ctx->op)->getType() == NytoParser::MINUS ? UnaryOp::Neg : UnaryOp::Plus;
    e->op_span = span(ctx->op);
    e->span = span(ctx);
    e->args.push_back(unary(need(ctx->unary())));
    set_depth(*e, depth_of(*e->args[0]) + 1, ctx->op);
    return e;
  }

  std::unique_ptr<Expr> power(NytoParser::PowerContext* ctx) {
    auto base = primary(need(ctx->primary()));
    if (!ctx->POW()) return base;
    auto exponent = unary(need(ctx->unary()));
    int depth = std::max(depth_of(*base), depth_of(*exponent)) + 1;
    antlr4::Token* tok = ctx->POW()->getSymbol();
    auto e = binary(BinaryOp::Pow, tok, std::move(base), std::move(exponent), depth);
    e->nesting = depth;
    return e;
  }

  std::unique_ptr<Expr> primary(NytoParser::PrimaryContext* ctx) {
    if (auto* n = dynamic_cast<NytoParser::NumberExprContext*>(ctx)) {
      auto e = std::make_unique<Expr>();
      e->kind = ExprKind::Number;
      e->span = span(ctx);
      // The lexer accepts only C-style decimal literals, which strtod reads exactly.
      const std::string text = need(n->NUMBER())->getText();
      e->number = std::strtod(text.c_str(), nullptr);
      if (std::isinf(e->number))  // a silent infinity would poison every value it touches
        c_.add("E0005", e->span,
               "number '" + text + "' is beyond the range of a double (about 1.8e308); write a "
               "smaller number, or divide by 0 if infinity is meant");
      return e;
    }
    if (auto* n = dynamic_cast<NytoParser::NameExprContext*>(ctx)) {
      auto e = std::make_unique<Expr>();
      e->kind = ExprKind::Name;
      e->span = span(ctx);
      e->name = need(n->NAME())->getText();
      return e;
    }
    if (auto* c = dynamic_cast<NytoParser::CallExprContext*>(ctx)) {
      auto e = std::make_unique<Expr>();
      e->kind = ExprKind::Call;
      e->span = span(ctx);
      e->name = need(c->NAME())->getText();
      e->name_span = span(c->NAME());
      int depth = 1;
      for (auto* a : c->expr()) {
        e->args.push_back(expr(a));
        depth = std::max(depth, depth_of(*e->args.back()) + 1);
      }
      set_depth(*e, depth, ctx->getStart());
      return e;
    }
    if (auto* x = dynamic_cast<NytoParser::IndexExprContext*>(ctx)) {
      auto e = std::make_unique<Expr>();
      e->kind = ExprKind::Index;
      e->span = span(ctx);
      e->name = need(x->NAME())->getText();
      e->name_span = span(x->NAME());
      e->args.push_back(expr(need(x->expr())));
      set_depth(*e, depth_of(*e->args.back()) + 1, ctx->getStart());
      return e;
    }
    if (auto* p = dynamic_cast<NytoParser::ParenExprContext*>(ctx)) {
      // Parentheses only group; the span widens to include them so carets cover what was written.
      auto e = expr(need(p->expr()));
      e->span = span(ctx);
      return e;
    }
    internal_error("unknown primary alternative");
  }

  Collector& c_;
};

}  // namespace

namespace {

Program parse_collecting(const Source& source, std::vector<Diagnostic>& diagnostics) {
  Collector collector(source, diagnostics);
  antlr4::ANTLRInputStream input(source.sanitized());
  SeparatorCollapsingLexer lexer(&input);
  LexerErrors lexer_errors(collector);
  lexer.removeErrorListeners();
  lexer.addErrorListener(&lexer_errors);
  antlr4::CommonTokenStream tokens(&lexer);

  NytoParser parser(&tokens);
  parser.removeErrorListeners();
  DepthGuard guard(collector);
  parser.addParseListener(&guard);
  try {
    tokens.fill();
    NytoParser::ProgramContext* tree = nullptr;
    // Stage 1: SLL prediction, bail at the first error. Almost every valid script parses here.
    parser.setErrorHandler(std::make_shared<antlr4::BailErrorStrategy>());
    parser.getInterpreter<antlr4::atn::ParserATNSimulator>()->setPredictionMode(
        antlr4::atn::PredictionMode::SLL);
    try {
      tree = parser.program();
    } catch (const antlr4::ParseCancellationException&) {
      tree = nullptr;
    }
    if (tree == nullptr) {
      // Stage 2: full LL with error reporting and capped recovery.
      tokens.seek(0);
      parser.reset();
      parser.removeParseListeners();
      DepthGuard guard2(collector);
      parser.addParseListener(&guard2);
      ParserErrors parser_errors(collector);
      parser.addErrorListener(&parser_errors);
      parser.setErrorHandler(std::make_shared<SyntaxErrorStrategy>());
      parser.getInterpreter<antlr4::atn::ParserATNSimulator>()->setPredictionMode(
          antlr4::atn::PredictionMode::LL);
      tree = parser.program();
      parser.removeErrorListeners();
      parser.removeParseListeners();
    }
    if (collector.count() > 0) return {};
    TreeConverter converter(collector);
    return converter.convert(tree);
  } catch (const StopParsing&) {
    return {};
  } catch (const antlr4::RuntimeException& e) {
    // Anything else ANTLR throws is a hole in our handling, not the user's fault.
    internal_error(std::string("ANTLR failed: ") + e.what());
  }
}

}  // namespace

Program parse(const Source& source, std::vector<Diagnostic>& diagnostics) {
  std::vector<Diagnostic> found;
  Program program = parse_collecting(source, found);
  // The lexer runs ahead of the parser; report in text order, "too many errors" last.
  std::stable_sort(found.begin(), found.end(), [](const Diagnostic& a, const Diagnostic& b) {
    bool a_last = a.code == "E0004", b_last = b.code == "E0004";
    if (a_last != b_last) return b_last;
    return a.span.line != b.span.line ? a.span.line < b.span.line : a.span.col < b.span.col;
  });
  diagnostics.insert(diagnostics.end(), found.begin(), found.end());
  return program;
}

}  // namespace nyto::frontend
