//! The one driver of an authed call: [`drive`] runs an [`Exchange`] to its
//! end over a runtime's [`CallIo`], which only performs I/O (send a hop,
//! read an answer's headers and body, refresh a grant). The Workers and
//! native `AuthedFetch` (and so `Background`, `McpClient` and the relays)
//! all call it, so the order of the steps (proof, reply, nonce, inspect,
//! refresh, retry) is written once.

use super::{Exchange, GrantFailure, Hop, Next, Reauthorize, Reply};
use crate::dpop::Nonces;
use crate::error::Error;
use crate::flow::Authorization;
use std::future::Future;
use url::Url;

/// What the exchange reads of an answer: its status and four headers (all
/// of a repeated `WWW-Authenticate`, joined with `, `).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answered {
    /// The status.
    pub status: u16,
    /// `Location`.
    pub location: Option<String>,
    /// Every `WWW-Authenticate`, joined.
    pub www_authenticate: Option<String>,
    /// `DPoP-Nonce`.
    pub dpop_nonce: Option<String>,
}

/// What a runtime does for [`drive`]: I/O, and nothing the request policy
/// decides. No `Send` bound, so it fits single-threaded wasm; a native
/// implementation's futures are `Send` when its parts are.
pub trait CallIo {
    /// The runtime's answer, handed back to the caller as it came.
    type Answer;
    /// The runtime's error.
    type Error: From<Error> + GrantFailure;

    /// Sends `hop` (its URL, method, the caller's headers it
    /// [forwards](Hop::forwards), `hop.authorization`, the body when
    /// `hop.body`), with `proof` as its `DPoP` header when given.
    fn send(
        &self,
        hop: &Hop<'_>,
        proof: Option<&str>,
    ) -> impl Future<Output = Result<Self::Answer, Self::Error>>;

    /// The status and headers of `answer` that the exchange reads.
    fn answered(&self, answer: &Self::Answer) -> Answered;

    /// Reads `answer`'s body (through the runtime's cap) and gives the
    /// answer back with that body, for the caller.
    fn read_body(
        &self,
        answer: Self::Answer,
        url: &Url,
    ) -> impl Future<Output = Result<(Self::Answer, Vec<u8>), Self::Error>>;

    /// Refreshes the grant behind `auth`, whose access token `token` the
    /// resource refused (single-flight: a grant refreshed meanwhile is
    /// not refreshed again).
    fn refresh(
        &self,
        auth: &Authorization,
        token: &str,
    ) -> impl Future<Output = Result<Authorization, Self::Error>>;

    /// The error the call ends with when the person must connect again.
    fn reauthorize(&self, exchange: &Exchange, r: Reauthorize) -> Self::Error;

    /// 16 fresh random bytes (a proof's `jti`).
    fn jti(&self) -> Result<[u8; 16], Self::Error>;

    /// The runtime's memory of the servers' DPoP nonces.
    fn nonces(&self) -> &Nonces;

    /// Seconds since the epoch.
    fn now(&self) -> u64;
}

/// Runs `exchange` from `next` (what [`Exchange::start`] gave) to its end:
/// the answer for the caller, or the runtime's error (a re-authorization
/// through [`CallIo::reauthorize`]).
pub async fn drive<T: CallIo>(
    io: &T,
    mut exchange: Exchange,
    mut next: Next,
) -> Result<T::Answer, T::Error> {
    loop {
        if let Next::Reauthorize(r) = next {
            return Err(io.reauthorize(&exchange, r));
        }
        let proof = match exchange.wants_proof() {
            true => exchange.proof(io.now(), io.jti()?, io.nonces()),
            false => None,
        };
        let hop_url = exchange.hop().url.clone();
        let mut answer = io.send(&exchange.hop(), proof.as_deref()).await?;
        let got = io.answered(&answer);
        if let (true, Some(n)) = (proof.is_some(), &got.dpop_nonce) {
            // Kept only from servers that were shown a proof.
            io.nonces().keep(&hop_url, n, io.now());
        }
        next = exchange.reply(Reply {
            status: got.status,
            location: got.location.as_deref(),
            www_authenticate: got.www_authenticate.as_deref(),
            dpop_nonce: got.dpop_nonce.as_deref(),
        })?;
        if next == Next::Inspect {
            // The API may say in the body that the token is refused; the
            // caller gets the same answer, body and all.
            let (again, body) = io.read_body(answer, &hop_url).await?;
            next = exchange.inspect(&body);
            answer = again;
        }
        match next {
            Next::Done | Next::Inspect => return Ok(answer),
            Next::Refresh => {
                let (Some(auth), Some(token)) =
                    (exchange.authorization(), exchange.rejected_token())
                else {
                    return Ok(answer);
                };
                let refreshed = io.refresh(auth, token).await;
                next = exchange.refreshed(refreshed)?;
            }
            Next::Send | Next::Reauthorize(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fetch::Reason;
    use crate::matching::ResourceKey;
    use crate::testing::block_on;
    use std::cell::RefCell;
    use std::collections::VecDeque;

    fn auth(header: &str, dpop: Option<crate::secret::DpopKey>) -> Authorization {
        Authorization {
            key: ResourceKey::parse("https://api.example/v1").unwrap(),
            header: Some(header.into()),
            scope: None,
            expires_at: None,
            narrower: Vec::new(),
            dpop,
            refused: None,
        }
    }

    /// Answers from a script; records what was sent and refreshed.
    #[derive(Default)]
    struct Fake {
        answers: RefCell<VecDeque<Answered>>,
        sent: RefCell<Vec<(String, Option<String>, bool)>>,
        refreshed: RefCell<Vec<String>>,
        fresh: Option<Authorization>,
        nonces: Nonces,
    }

    impl CallIo for Fake {
        type Answer = Answered;
        type Error = Error;
        async fn send(&self, hop: &Hop<'_>, proof: Option<&str>) -> Result<Answered, Error> {
            let auth = hop.authorization.map(str::to_owned);
            let sent = (hop.url.to_string(), auth, proof.is_some());
            self.sent.borrow_mut().push(sent);
            Ok(self.answers.borrow_mut().pop_front().expect("an answer"))
        }
        fn answered(&self, answer: &Answered) -> Answered {
            answer.clone()
        }
        async fn read_body(&self, a: Answered, _: &Url) -> Result<(Answered, Vec<u8>), Error> {
            Ok((a, Vec::new()))
        }
        async fn refresh(&self, _: &Authorization, token: &str) -> Result<Authorization, Error> {
            self.refreshed.borrow_mut().push(token.to_owned());
            self.fresh.clone().ok_or(Error::NoRefreshToken {
                resource: "https://api.example/v1".into(),
            })
        }
        fn reauthorize(&self, _: &Exchange, r: Reauthorize) -> Error {
            Error::AuthorizationRequired(r)
        }
        fn jti(&self) -> Result<[u8; 16], Error> {
            Ok([7; 16])
        }
        fn nonces(&self) -> &Nonces {
            &self.nonces
        }
        fn now(&self) -> u64 {
            1_000
        }
    }

    fn answer(status: u16, challenge: Option<&str>) -> Answered {
        Answered {
            status,
            www_authenticate: challenge.map(str::to_owned),
            ..Answered::default()
        }
    }

    fn run(io: &Fake, a: Authorization) -> Result<Answered, Error> {
        let url = "https://api.example/v1/items";
        let policy = crate::policy::Policy::STRICT;
        let found: Result<_, Error> = Ok(Some(a));
        let (exchange, next) = Exchange::start("GET", url, found, policy).unwrap();
        block_on(drive(io, exchange, next))
    }

    /// Refused: one refresh, the request again with the new token, and the
    /// answer as it came; refused again after the refresh: connect again.
    #[test]
    fn a_refused_token_is_refreshed_once_and_the_call_retried() {
        let io = Fake {
            answers: RefCell::new([answer(401, Some("Bearer")), answer(200, None)].into()),
            fresh: Some(auth("Bearer t2", None)),
            ..Fake::default()
        };
        assert_eq!(run(&io, auth("Bearer t1", None)).unwrap().status, 200);
        let sent = io.sent.borrow();
        let tokens: Vec<_> = sent.iter().map(|(_, a, _)| a.as_deref()).collect();
        assert_eq!(tokens, [Some("Bearer t1"), Some("Bearer t2")]);
        assert_eq!(*io.refreshed.borrow(), ["t1"]);

        let io = Fake {
            answers: RefCell::new([answer(401, Some("Bearer")), answer(401, None)].into()),
            fresh: Some(auth("Bearer t2", None)),
            ..Fake::default()
        };
        let Err(Error::AuthorizationRequired(r)) = run(&io, auth("Bearer t1", None)) else {
            panic!("connect again");
        };
        assert_eq!(r.reason, Reason::Revoked);
        assert_eq!(io.refreshed.borrow().len(), 1, "one refresh only");
    }

    /// A bound token: each hop has a proof; the nonce a refusal gives is
    /// kept for the origin and the hop sent again. A nonce given to a hop
    /// without a proof is not kept.
    #[cfg(feature = "signing")]
    #[test]
    fn a_bound_call_proves_each_hop_and_keeps_the_nonce_it_was_given() {
        let key = crate::secret::DpopKey::generate([3; 32]);
        let nonced = Answered {
            dpop_nonce: Some("n-1".into()),
            ..answer(401, Some(r#"DPoP error="use_dpop_nonce", algs="ES256""#))
        };
        let io = Fake {
            answers: RefCell::new([nonced, answer(200, None)].into()),
            ..Fake::default()
        };
        assert_eq!(run(&io, auth("DPoP t1", key)).unwrap().status, 200);
        assert!(io.sent.borrow().iter().all(|(_, _, proof)| *proof));
        assert_eq!(io.sent.borrow().len(), 2);
        let origin = Url::parse("https://api.example/other").unwrap();
        assert_eq!(io.nonces.get(&origin, 1_000).as_deref(), Some("n-1"));

        let io = Fake {
            answers: RefCell::new(
                [Answered {
                    dpop_nonce: Some("n-2".into()),
                    ..answer(200, None)
                }]
                .into(),
            ),
            ..Fake::default()
        };
        run(&io, auth("Bearer t1", None)).unwrap();
        assert_eq!(
            io.nonces.get(&origin, 1_000),
            None,
            "no proof, no nonce kept"
        );
    }
}
