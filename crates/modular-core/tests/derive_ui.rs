//! Compile-time checks of `#[derive(DynamicConfig)]`: misuse is an error that points at the
//! offending token, and a well-formed config compiles.
//!
//! Regenerate the snapshots with `TRYBUILD=overwrite cargo test -p modular-core --test derive_ui`.

#[test]
fn derive_misuse_is_reported_at_the_offending_token() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/fail_*.rs");
    cases.pass("tests/ui/pass_*.rs");
}
