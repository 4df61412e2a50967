//! TLS for [`super::PostgresStore::connect`], as the connection string's
//! `sslmode` asks:
//! - `require`, `verify-ca`, `verify-full`: TLS, the server's certificate
//!   checked against the Web PKI's roots (`webpki-roots`) and the PEM file
//!   `sslrootcert` names, host name included (all three check as libpq's
//!   `verify-full` does: a certificate nobody checked keeps out only a
//!   passive listener); no TLS, no connection;
//! - `disable`, `prefer` or none: plain TCP (or a Unix socket), for a
//!   database on the same machine or network.
//!
//! rustls, the HTTP client's TLS, with its `ring` provider: no OpenSSL.

use crate::error::{Error, Result, StorageCause, StorageError};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::config::SslMode;
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use tokio_rustls::rustls::{self, pki_types};

/// What a connection string asks beyond what `tokio_postgres` reads.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Wish {
    /// `verify-ca` or `verify-full` was asked (read as `require`).
    verify: bool,
    /// `sslrootcert`: a PEM file of roots to trust too.
    root_file: Option<String>,
}

/// `url` without the parameters `tokio_postgres` does not read
/// (`sslrootcert`, and the `verify-*` modes, which become `require`), and
/// what they asked.
pub(super) fn split(url: &str) -> (String, Wish) {
    let mut wish = Wish::default();
    let mut take = |key: &str, value: &str| -> Option<String> {
        match (key, value) {
            ("sslrootcert", file) => {
                wish.root_file = Some(file.to_owned());
                None
            }
            ("sslmode", "verify-ca" | "verify-full") => {
                wish.verify = true;
                Some("require".into())
            }
            (_, v) => Some(v.to_owned()),
        }
    };
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let Ok(mut parsed) = url::Url::parse(url) else {
            return (url.to_owned(), wish);
        };
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .filter_map(|(k, v)| take(&k, &v).map(|v| (k.into_owned(), v)))
            .collect();
        if pairs.is_empty() {
            parsed.set_query(None);
        } else {
            parsed.query_pairs_mut().clear().extend_pairs(pairs);
        }
        return (parsed.into(), wish);
    }
    // `key=value` words (values with spaces are quoted, and left as they are).
    let words: Vec<String> = url
        .split_whitespace()
        .filter_map(|w| match w.split_once('=') {
            Some((k, v)) if !v.starts_with('\'') => take(k, v).map(|v| format!("{k}={v}")),
            _ => Some(w.to_owned()),
        })
        .collect();
    (words.join(" "), wish)
}

/// The connector `mode` and `wish` ask for: `None` for plain connections.
pub(super) fn connector(mode: SslMode, wish: &Wish) -> Result<Option<Rustls>> {
    if !(wish.verify || mode == SslMode::Require) {
        return Ok(None);
    }
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(file) = &wish.root_file {
        add_roots(&mut roots, file)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error(format!("PostgreSQL TLS settings: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Some(Rustls(Arc::new(config))))
}

fn tls_error(what: String) -> Error {
    Error::storage(StorageCause::Backend, what)
}

fn add_roots(roots: &mut rustls::RootCertStore, file: &str) -> Result<()> {
    use pki_types::pem::PemObject;
    let unreadable = |e: pki_types::pem::Error| {
        Error::Storage(StorageError::with_source(
            StorageCause::Backend,
            format!("sslrootcert {file}: not a readable PEM file of certificates"),
            e,
        ))
    };
    let mut added = 0;
    for cert in pki_types::CertificateDer::pem_file_iter(file).map_err(unreadable)? {
        roots
            .add(cert.map_err(unreadable)?)
            .map_err(|e| tls_error(format!("sslrootcert {file}: {e}")))?;
        added += 1;
    }
    if added == 0 {
        return Err(tls_error(format!(
            "sslrootcert {file}: no certificate in it"
        )));
    }
    Ok(())
}

/// Makes a TLS connection per PostgreSQL connection, for the host it
/// connects to.
#[derive(Clone)]
pub(super) struct Rustls(Arc<rustls::ClientConfig>);

/// One connection's handshake.
pub(super) struct Connect {
    config: Arc<rustls::ClientConfig>,
    name: pki_types::ServerName<'static>,
}

impl<S> MakeTlsConnect<S> for Rustls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = Stream<S>;
    type TlsConnect = Connect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, host: &str) -> io::Result<Connect> {
        let name = pki_types::ServerName::try_from(host.to_owned())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        Ok(Connect {
            config: self.0.clone(),
            name,
        })
    }
}

impl<S> TlsConnect<S> for Connect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = Stream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Stream<S>>> + Send>>;

    fn connect(self, socket: S) -> Self::Future {
        Box::pin(async move {
            let connector = tokio_rustls::TlsConnector::from(self.config);
            Ok(Stream(connector.connect(self.name, socket).await?))
        })
    }
}

/// A TLS connection to the server.
pub(super) struct Stream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Stream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Stream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for Stream<S> {
    /// No channel binding: SCRAM authenticates without it (`-PLUS` is not
    /// offered), as over a plain connection.
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parameters_the_driver_does_not_read_are_taken_out() {
        let (url, wish) = split(
            "postgresql://idp@db.example:5432/idp?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&application_name=x",
        );
        assert_eq!(
            url,
            "postgresql://idp@db.example:5432/idp?sslmode=require&application_name=x"
        );
        assert!(wish.verify);
        assert_eq!(wish.root_file.as_deref(), Some("/etc/ca.pem"));
        let (url, wish) = split("postgresql://idp@127.0.0.1/idp?sslrootcert=ca.pem");
        assert_eq!(url, "postgresql://idp@127.0.0.1/idp");
        assert!(!wish.verify);
        let (url, wish) = split("host=db.example user=idp sslmode=verify-ca sslrootcert=/ca.pem");
        assert_eq!(url, "host=db.example user=idp sslmode=require");
        assert!(wish.verify && wish.root_file.is_some());
        let plain = "postgresql://idp@127.0.0.1/idp";
        assert_eq!(split(plain), (plain.to_owned(), Wish::default()));
    }

    #[test]
    fn only_require_and_the_verify_modes_use_tls() {
        let none = Wish::default();
        assert!(connector(SslMode::Disable, &none).unwrap().is_none());
        assert!(connector(SslMode::Prefer, &none).unwrap().is_none());
        assert!(connector(SslMode::Require, &none).unwrap().is_some());
        let verify = Wish {
            verify: true,
            root_file: None,
        };
        assert!(connector(SslMode::Require, &verify).unwrap().is_some());
        let missing = Wish {
            verify: true,
            root_file: Some("/nonexistent/ca.pem".into()),
        };
        let e = connector(SslMode::Require, &missing).err().unwrap();
        assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
    }
}
