//! Shared support for the black-box tests in `tests/`: locating the built plugin binaries and
//! the reference binaries, and executing a plugin with a CNI environment and stdin.
