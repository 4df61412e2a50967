//! Compile tests for `#[idp_worker]`: accepted shapes and every error.

#[test]
fn idp_worker_ui() {
    let t = trybuild::TestCases::new();
    t.pass("ui/pass/*.rs");
    t.compile_fail("ui/fail/*.rs");
}
