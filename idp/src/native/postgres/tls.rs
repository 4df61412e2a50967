//! TLS for [`super::PostgresStore::connect`], as the connection string's
//! `sslmode` asks:
//! - `require`, `verify-ca`, `verify-full`: TLS, the server's certificate
//!   checked against the roots in the PEM file `sslrootcert` names, or
//!   the Web PKI's (`webpki-roots`) without one, host name included (all
//!   three check as libpq's `verify-full` does: a certificate nobody
//!   checked keeps out only a passive listener); no TLS, no connection;
//! - `disable`, `prefer` or none: plain TCP (or a Unix socket), for a
//!   database on the same machine or network.
//!
//! A string that names `sslmode` twice is refused, and so is one whose
//! mode the driver reads as other than `require` after TLS was asked.
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
    /// `require`, `verify-ca` or `verify-full` was asked (the `verify-*`
    /// modes are read as `require`).
    tls: bool,
    /// `sslrootcert`: a PEM file of the roots to trust instead of the Web
    /// PKI's.
    root_file: Option<String>,
}

/// `url` without the parameters `tokio_postgres` does not read
/// (`sslrootcert`, and the `verify-*` modes, which become `require`), and
/// what they asked. Everything else is left exactly as written. A string
/// that names `sslmode` twice is refused: the driver would take the last,
/// and a later one could quietly turn TLS off.
pub(super) fn split(url: &str) -> Result<(String, Wish)> {
    let mut wish = Wish::default();
    let mut modes = 0;
    // `Some(raw)` keeps the parameter as written, `Some(other)` rewrites
    // it, `None` takes it out.
    let mut take = |key: &str, value: &str, raw: String| -> Option<String> {
        match key {
            "sslrootcert" => {
                wish.root_file = Some(value.to_owned());
                None
            }
            "sslmode" => {
                modes += 1;
                wish.tls = matches!(value, "require" | "verify-ca" | "verify-full");
                match value {
                    "verify-ca" | "verify-full" => Some("sslmode=require".into()),
                    _ => Some(raw),
                }
            }
            _ => Some(raw),
        }
    };
    let out = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        match url.split_once('?') {
            None => url.to_owned(),
            Some((base, query)) => {
                let kept: Vec<String> = query
                    .split('&')
                    .filter_map(|pair| {
                        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                        let decode = |t: &str| {
                            percent_encoding::percent_decode_str(t)
                                .decode_utf8_lossy()
                                .into_owned()
                        };
                        take(&decode(k), &decode(v), pair.to_owned())
                    })
                    .collect();
                match kept.is_empty() {
                    true => base.to_owned(),
                    false => format!("{base}?{}", kept.join("&")),
                }
            }
        }
    } else {
        words(url)
            .into_iter()
            .filter_map(|w| match w.split_once('=') {
                Some((k, v)) if !v.starts_with('\'') => take(k, v, w.clone()),
                _ => Some(w),
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    if modes > 1 {
        return Err(tls_error(
            "the PostgreSQL connection string names sslmode more than once".into(),
        ));
    }
    Ok((out, wish))
}

/// The words of a `key=value` connection string, as written: a quoted
/// value (with `\'` and `\\` escapes) stays one word, spaces and all.
fn words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let (mut quoted, mut escaped) = (false, false);
    for c in s.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '\'' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !word.is_empty() {
                    out.push(std::mem::take(&mut word));
                }
                continue;
            }
            _ => {}
        }
        word.push(c);
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

/// The connector `mode` and `wish` ask for: `None` for plain connections.
/// TLS asked for and a mode that is not `require` (a second `sslmode` the
/// string hid from [`split`]) is refused rather than connected in plain.
pub(super) fn connector(mode: SslMode, wish: &Wish) -> Result<Option<Rustls>> {
    if wish.tls && mode != SslMode::Require {
        return Err(tls_error(format!(
            "the PostgreSQL connection string asks for TLS and then for sslmode {mode:?}"
        )));
    }
    if mode != SslMode::Require {
        return Ok(None);
    }
    let mut roots = rustls::RootCertStore::empty();
    match &wish.root_file {
        // As libpq: the operator's roots instead of the Web PKI's.
        Some(file) => add_roots(&mut roots, file)?,
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error(format!("PostgreSQL TLS settings: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    // PostgreSQL 17 requires it for `sslnegotiation=direct`.
    config.alpn_protocols = vec![b"postgresql".to_vec()];
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
            "postgresql://idp@db.example:5432/idp?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&options=-c%20statement_timeout%3D5s",
        )
        .unwrap();
        assert_eq!(
            url,
            "postgresql://idp@db.example:5432/idp?sslmode=require&options=-c%20statement_timeout%3D5s",
            "the rest exactly as written"
        );
        assert!(wish.tls);
        assert_eq!(wish.root_file.as_deref(), Some("/etc/ca.pem"));
        let (url, wish) = split("postgresql://idp@127.0.0.1/idp?sslrootcert=ca.pem").unwrap();
        assert_eq!(url, "postgresql://idp@127.0.0.1/idp");
        assert!(!wish.tls);
        let (url, wish) = split(
            "host=db.example password='a  b sslmode=disable' sslmode=verify-ca sslrootcert=/ca.pem",
        )
        .unwrap();
        assert_eq!(
            url,
            "host=db.example password='a  b sslmode=disable' sslmode=require"
        );
        assert!(wish.tls && wish.root_file.is_some());
        let plain = "postgresql://idp@127.0.0.1/idp?application_name=a%20b";
        assert_eq!(split(plain).unwrap(), (plain.to_owned(), Wish::default()));
        for twice in [
            "postgresql://h/d?sslmode=verify-full&sslmode=disable",
            "host=h sslmode=verify-full sslmode=prefer",
        ] {
            let e = split(twice).unwrap_err();
            assert!(e.to_string().contains("more than once"), "{e}");
        }
    }

    #[test]
    fn only_require_and_the_verify_modes_use_tls_and_nothing_turns_it_off() {
        let none = Wish::default();
        assert!(connector(SslMode::Disable, &none).unwrap().is_none());
        assert!(connector(SslMode::Prefer, &none).unwrap().is_none());
        let tls = Wish {
            tls: true,
            root_file: None,
        };
        assert!(connector(SslMode::Require, &tls).unwrap().is_some());
        // A mode the string hid from `split` (`sslmode = disable`).
        assert!(connector(SslMode::Disable, &tls).is_err());
        assert!(connector(SslMode::Prefer, &tls).is_err());
        assert!(connector(SslMode::Require, &none).unwrap().is_some());
        let missing = Wish {
            tls: true,
            root_file: Some("/nonexistent/ca.pem".into()),
        };
        let e = connector(SslMode::Require, &missing).err().unwrap();
        assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
    }
}
