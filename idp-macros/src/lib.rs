//! Procedural macros for `idp`. Use them through the `idp` crate.
