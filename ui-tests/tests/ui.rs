//! The macros' diagnostics (`ui/<macro>/<rule>.rs` against its `.stderr`) and programs that must
//! compile (`pass/`). Regenerate the expected output with `TRYBUILD=overwrite cargo test -p ui-tests`
//! and read the diff.

#[test]
fn macro_diagnostics_and_accepted_programs() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*/*.rs");
    t.pass("tests/pass/*.rs");
}
