//! # idp
//!
//! A client-side OAuth 2 identity provider for apps that act for their users
//! against many protected APIs and MCP servers.
//!
//! This crate's core is a protocol engine with no I/O of its own: challenge
//! parsing, discovery (RFC 9728, RFC 8414, OpenID Connect Discovery), client
//! registration (RFC 7591, pre-registered clients, client ID metadata
//! documents), PKCE S256, authorization requests and callbacks (RFC 9207), token
//! exchange, refresh and revocation (RFC 7009), and longest-prefix URL matching.
//! Requests go out through the [`http::HttpClient`] trait; time and randomness
//! are passed in. The same code runs natively and in wasm.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod authorize;
pub mod challenge;
pub mod discovery;
mod encoding;
pub mod error;
pub mod flow;
pub mod http;
pub mod matching;
pub mod pkce;
pub mod policy;
pub mod probe;
pub mod registration;
pub mod secret;
pub mod store;
pub mod token;

#[cfg(feature = "native")]
pub mod native;

#[cfg(test)]
mod testing;

pub use error::{Error, Result};

#[cfg(feature = "workers")]
pub mod workers;
