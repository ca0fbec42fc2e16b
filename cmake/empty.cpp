// The shared library nyto is the union of the internal archives; this file gives it a source.
