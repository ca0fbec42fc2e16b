// The nyto rule language, versions 0 and 1 (see docs/language.md). Precedence is spelled out as one rule
// per level rather than with ANTLR's left-recursive alternatives so that the frontend walks
// binary chains iteratively (deep `a+b+c+...` chains then cost no parser recursion) and the
// precedence of unary minus against `**` is visible here: `-x**2` is `-(x**2)`.
grammar Nyto;

@lexer::members {
  // Newlines inside parentheses continue the statement (docs/language.md, Lexical rules).
  int paren_depth = 0;
}

// The frontend's token source drops a separator at the start of the input and after another
// separator, so runs of blank lines and ';' reach the parser as at most one separator. With that,
// deciding whether another statement follows looks at most two tokens ahead (never across a whole
// statement, which made one error swallow the rest of the script during recovery, nor across a
// long run of blank lines, which made prediction quadratic).
program
  : sep* (statement (sep+ statement)*)? sep* EOF
  ;

sep
  : NEWLINE
  | SEMI
  ;

statement
  : PARAM NAME ASSIGN expr    # paramStmt
  | LET NAME ASSIGN expr      # letStmt
  | STATE NAME (COLON kind=NAME)? ASSIGN expr  # stateStmt
  | NAME ASSIGN expr          # assignStmt
  | expr                      # exprStmt
  ;

expr
  : additive (op+=(LT | LE | GT | GE | EQ | NE) additive)*
  ;

additive
  : multiplicative (op+=(PLUS | MINUS) multiplicative)*
  ;

multiplicative
  : unary (op+=(STAR | SLASH) unary)*
  ;

unary
  : op=(MINUS | PLUS) unary
  | power
  ;

// Right-associative, and its right operand may carry a sign: 2**-1, 2**3**2 = 2**(3**2).
power
  : primary (POW unary)?
  ;

primary
  : NUMBER                                  # numberExpr
  | NAME LPAREN (expr (COMMA expr)*)? RPAREN   # callExpr
  | NAME LBRACK expr RBRACK                  # indexExpr
  | NAME                                    # nameExpr
  | LPAREN expr RPAREN                      # parenExpr
  ;

PARAM : 'param' ;
LET   : 'let' ;
STATE : 'state' ;

NUMBER
  : DIGIT+ ('.' DIGIT*)? EXPONENT?
  | '.' DIGIT+ EXPONENT?
  ;
NAME : [A-Za-z_] [A-Za-z0-9_]* ;

LPAREN : '(' { ++paren_depth; } ;
RPAREN : ')' { if (paren_depth > 0) --paren_depth; } ;
LBRACK : '[' { ++paren_depth; } ;
RBRACK : ']' { if (paren_depth > 0) --paren_depth; } ;
COMMA  : ',' ;
COLON  : ':' ;
SEMI   : ';' ;
POW    : '**' ;
STAR   : '*' ;
SLASH  : '/' ;
PLUS   : '+' ;
MINUS  : '-' ;
LE     : '<=' ;
GE     : '>=' ;
EQ     : '==' ;
NE     : '!=' ;
LT     : '<' ;
GT     : '>' ;
ASSIGN : '=' ;

NEWLINE : ('\r'? '\n' | '\r') { if (paren_depth > 0) skip(); } ;
COMMENT : '#' ~[\r\n]* -> skip ;
WS      : [ \t\f]+ -> skip ;

fragment DIGIT    : [0-9] ;
fragment EXPONENT : [eE] [+-]? DIGIT+ ;
