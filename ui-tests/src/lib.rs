//! Compile-fail and compile-pass tests for the `places` macros; the tests live in `tests/`.
