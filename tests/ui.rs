//! Compile tests for `#[derive(Event)]`: each `ui/fail/<mistake>.rs` must fail with the error in
//! its `.stderr` (spanned on the offending token); each `ui/pass/*.rs` must build and run.
//! Refresh snapshots with `TRYBUILD=overwrite cargo test --test ui` and review them in `git diff`.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/fail/*.rs");
    cases.pass("tests/ui/pass/*.rs");
}
