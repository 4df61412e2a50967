//! [`relay()`]: an upstream answer passed on to the app's caller, its body
//! streamed through [`CappedBody`] and cut at the relay cap
//! ([`Config::relay_max_bytes`](super::Config#structfield.relay_max_bytes)).

use super::config::Config;
use super::error::Error;
use futures_core::Stream;
use std::pin::Pin;
use std::task::{Context, Poll};
use worker::{Response, ResponseBody};

/// The most bytes of an upstream body [`relay()`] passes on by default: 16 MiB.
pub const DEFAULT_RELAY_MAX_BYTES: u64 = 16 << 20;

/// A body stream that passes on at most `max_bytes` bytes of `inner`.
///
/// An answer of `max_bytes` or fewer passes whole. The first chunk past the
/// cap is cut to the bytes left, and the stream then ends with an error
/// (never a clean end: a body cut short must not look whole) after dropping
/// `inner`. Dropping a Workers body stream (`worker::ByteStream`) cancels
/// it, so the upstream request ends there too; so it does when the caller
/// goes away (the runtime cancels the relayed stream, which drops this one).
#[derive(Debug)]
pub struct CappedBody<S> {
    state: State<S>,
    left: u64,
    max_bytes: u64,
}

#[derive(Debug)]
enum State<S> {
    Relaying(S),
    /// Past the cap: the upstream is dropped, the error comes next.
    Cut,
    Done,
}

impl<S> CappedBody<S> {
    /// Passes on at most `max_bytes` of `inner`.
    pub fn new(inner: S, max_bytes: u64) -> Self {
        Self {
            state: State::Relaying(inner),
            left: max_bytes,
            max_bytes,
        }
    }

    /// How many bytes have been passed on.
    pub fn relayed(&self) -> u64 {
        self.max_bytes - self.left
    }

    /// The error the stream ends with once past the cap.
    fn cut_error(&self) -> worker::Error {
        worker::Error::RustError(format!(
            "the relayed answer passed {} bytes and was cut there (the relay cap, IDP_RELAY_MAX_BYTES)",
            self.max_bytes
        ))
    }
}

impl<S> Stream for CappedBody<S>
where
    S: Stream<Item = worker::Result<Vec<u8>>> + Unpin,
{
    type Item = worker::Result<Vec<u8>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let inner = match &mut this.state {
            State::Relaying(inner) => inner,
            State::Cut => {
                this.state = State::Done;
                return Poll::Ready(Some(Err(this.cut_error())));
            }
            State::Done => return Poll::Ready(None),
        };
        match futures_core::ready!(Pin::new(inner).poll_next(cx)) {
            None => {
                this.state = State::Done;
                Poll::Ready(None)
            }
            Some(Err(e)) => {
                this.state = State::Done;
                Poll::Ready(Some(Err(e)))
            }
            Some(Ok(mut chunk)) => {
                let len = chunk.len() as u64;
                if len <= this.left {
                    this.left -= len;
                    return Poll::Ready(Some(Ok(chunk)));
                }
                // Past the cap: drop (and so cancel) the upstream now, pass
                // on what is left of the allowance, then fail.
                this.state = State::Cut;
                chunk.truncate(usize::try_from(this.left).unwrap_or(usize::MAX));
                this.left = 0;
                if chunk.is_empty() {
                    this.state = State::Done;
                    return Poll::Ready(Some(Err(this.cut_error())));
                }
                Poll::Ready(Some(Ok(chunk)))
            }
        }
    }
}

/// Answers the app's caller with `upstream`: its status and content type,
/// and its body streamed through as it arrives (never held whole in the
/// isolate) and cut at `config`'s relay cap
/// ([`Config::relay_max_bytes`](Config#structfield.relay_max_bytes),
/// `IDP_RELAY_MAX_BYTES`, default [`DEFAULT_RELAY_MAX_BYTES`]).
///
/// - An answer whose `Content-Length` is over the cap is refused before
///   any of it is passed on: [`Error::TooLargeToRelay`] (502
///   `invalid_response`), its body cancelled.
/// - An answer that runs past the cap without saying so has already
///   started (its status is sent), so it cannot become an error answer:
///   its body stops after exactly the cap's bytes and ends with a stream
///   error, which the Worker's log shows ("the relayed answer passed N
///   bytes and was cut there"). How the caller sees that end is the
///   runtime's: workerd (in `wrangler dev` too) closes a response whose
///   stream errors as if it were whole (workerd issue 6818), so there a
///   body of exactly the cap's length may have been cut; a runtime that
///   aborts such a response shows the caller an incomplete body.
/// - The upstream request is cancelled at the cut, and when the caller
///   goes away. Each hop's timeout ([`Config::timeout`](Config::timeout))
///   still bounds the time.
///
/// The upstream is not this app: its content is never run as a page of the
/// app's origin (`content-security-policy: sandbox`, `nosniff`, no framing),
/// and no other header of it is passed on.
///
/// ```no_run
/// # async fn f(handler: &idp::workers::Handler, url: &str) -> Result<idp::worker::Response, idp::workers::Error> {
/// let upstream = handler.fetcher().get(url).await?;
/// idp::workers::relay(upstream, handler.config())
/// # }
/// ```
pub fn relay(mut upstream: Response, config: &Config) -> Result<Response, Error> {
    let max_bytes = config
        .relay_max_bytes
        .map_or(DEFAULT_RELAY_MAX_BYTES, std::num::NonZeroU64::get);
    let status = upstream.status_code();
    let content_type = upstream.headers().get("content-type")?;
    let declared = upstream
        .headers()
        .get("content-length")?
        .and_then(|n| n.trim().parse::<u64>().ok());
    if let (Some(declared), ResponseBody::Stream(_)) = (declared, upstream.body()) {
        if declared > max_bytes {
            // Dropping the body stream cancels it: the upstream request ends.
            drop(upstream.stream());
            return Err(Error::TooLargeToRelay {
                declared,
                max_bytes,
            });
        }
    }
    let resp = match upstream.body() {
        ResponseBody::Empty => Response::empty()?,
        ResponseBody::Body(b) if b.len() as u64 <= max_bytes => Response::from_bytes(b.clone())?,
        ResponseBody::Body(b) => {
            Response::from_stream(CappedBody::new(Once(Some(b.clone())), max_bytes))?
        }
        ResponseBody::Stream(_) => {
            Response::from_stream(CappedBody::new(upstream.stream()?, max_bytes))?
        }
    };
    let mut resp = resp.with_status(status);
    let headers = resp.headers_mut();
    if let Some(ct) = content_type {
        headers.set("content-type", &ct)?;
    }
    headers.set("content-security-policy", "sandbox; default-src 'none'")?;
    headers.set("x-content-type-options", "nosniff")?;
    headers.set("x-frame-options", "DENY")?;
    Ok(resp)
}

/// A body already read, as a stream of one chunk.
struct Once(Option<Vec<u8>>);

impl Stream for Once {
    type Item = worker::Result<Vec<u8>>;

    fn poll_next(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Poll::Ready(self.get_mut().0.take().map(Ok))
    }
}

#[cfg(test)]
mod tests {
    use super::{CappedBody, Once};
    use futures_core::Stream;
    use std::cell::Cell;
    use std::pin::Pin;
    use std::rc::Rc;
    use std::task::{Context, Poll, Waker};

    /// An upstream that sends `chunk`-byte chunks forever (or `limit`
    /// chunks), and says when it was dropped.
    struct Upstream {
        chunk: usize,
        limit: Option<usize>,
        sent: usize,
        dropped: Rc<Cell<bool>>,
    }

    impl Stream for Upstream {
        type Item = worker::Result<Vec<u8>>;
        fn poll_next(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            let this = self.get_mut();
            if this.limit.is_some_and(|l| this.sent == l) {
                return Poll::Ready(None);
            }
            this.sent += 1;
            Poll::Ready(Some(Ok(vec![b'x'; this.chunk])))
        }
    }

    impl Drop for Upstream {
        fn drop(&mut self) {
            self.dropped.set(true);
        }
    }

    fn upstream(chunk: usize, limit: Option<usize>) -> (Upstream, Rc<Cell<bool>>) {
        let dropped = Rc::new(Cell::new(false));
        let u = Upstream {
            chunk,
            limit,
            sent: 0,
            dropped: dropped.clone(),
        };
        (u, dropped)
    }

    /// Polls to the end: the bytes passed on, and the error it ended with.
    fn drain<S: Stream<Item = worker::Result<Vec<u8>>> + Unpin>(
        s: &mut S,
    ) -> (usize, Option<String>) {
        let mut cx = Context::from_waker(Waker::noop());
        let mut bytes = 0;
        for _ in 0..1_000_000 {
            match Pin::new(&mut *s).poll_next(&mut cx) {
                Poll::Ready(Some(Ok(c))) => bytes += c.len(),
                Poll::Ready(Some(Err(e))) => {
                    assert!(
                        matches!(Pin::new(&mut *s).poll_next(&mut cx), Poll::Ready(None)),
                        "the stream ends after its error"
                    );
                    return (bytes, Some(e.to_string()));
                }
                Poll::Ready(None) => return (bytes, None),
                Poll::Pending => unreachable!("these streams are always ready"),
            }
        }
        panic!("the stream did not end");
    }

    #[test]
    fn an_endless_body_is_cut_at_the_cap_and_the_upstream_dropped() {
        let (up, dropped) = upstream(65_536, None);
        let mut capped = CappedBody::new(up, 1_000_000);
        let (bytes, error) = drain(&mut capped);
        assert_eq!(bytes, 1_000_000, "exactly the cap, the last chunk cut");
        assert_eq!(capped.relayed(), 1_000_000);
        let error = error.expect("a cut body ends with an error, not a clean end");
        assert!(error.contains("1000000 bytes"), "{error}");
        assert!(dropped.get(), "the upstream is dropped, so cancelled");
    }

    #[test]
    fn a_body_at_or_under_the_cap_passes_whole() {
        for (chunks, cap) in [(4, 4 * 1000), (3, 4 * 1000), (0, 1)] {
            let (up, dropped) = upstream(1000, Some(chunks));
            let mut capped = CappedBody::new(up, cap);
            assert_eq!(drain(&mut capped), (chunks * 1000, None), "{chunks} {cap}");
            assert!(dropped.get());
        }
    }

    #[test]
    fn a_chunk_on_the_cap_then_more_fails_at_once() {
        // The cap falls between chunks: nothing more passes, then the error.
        let (up, dropped) = upstream(1000, Some(5));
        let mut capped = CappedBody::new(up, 2000);
        let (bytes, error) = drain(&mut capped);
        assert_eq!(bytes, 2000);
        assert!(error.is_some());
        assert!(dropped.get());
    }

    #[test]
    fn an_upstream_error_passes_through() {
        struct Failing;
        impl Stream for Failing {
            type Item = worker::Result<Vec<u8>>;
            fn poll_next(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
                Poll::Ready(Some(Err(worker::Error::RustError("reset".into()))))
            }
        }
        let (bytes, error) = drain(&mut CappedBody::new(Failing, 10));
        assert_eq!((bytes, error.as_deref()), (0, Some("reset")));
    }

    #[test]
    fn a_body_read_before_is_cut_alike() {
        let mut capped = CappedBody::new(Once(Some(vec![0; 5000])), 3000);
        let (bytes, error) = drain(&mut capped);
        assert_eq!(bytes, 3000);
        assert!(error.is_some());
    }
}
