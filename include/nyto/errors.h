// Errors thrown by nyto. Every misuse a user can make ends in a subclass of nyto::Error with a
// message that says what is wrong and how to mend it; a failed check leaves its operands unchanged.
#pragma once

#include <stdexcept>
#include <string>

namespace nyto {

/// Base of every error nyto throws for a user's mistake or a failed operation.
struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Operands belong to different species (were not built from one another).
struct SpeciesError : Error {
  using Error::Error;
};

/// Two structures differ: a parameter path, count or shape does not match.
struct ShapeError : Error {
  using Error::Error;
};

/// No parameter or submodule has the given name or path.
struct NameError : Error {
  using Error::Error;
};

/// A file is missing, unreadable, corrupt, or could not be written.
struct IOError : Error {
  using Error::Error;
};

/// A value bound to a rule is of the wrong kind, dtype or device.
struct BindError : Error {
  using Error::Error;
};

/// A rule's run-time check failed before anything was written: a member index (`x[i]`) that is
/// not an integer in [0, members) for some member. Nothing the rule would write was changed.
struct RunError : Error {
  using Error::Error;
};

}  // namespace nyto
