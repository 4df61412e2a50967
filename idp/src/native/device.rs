//! The device logins this process started and that still wait for their
//! person ([`WaitingLogins`]): a user has at most
//! [`MAX_WAITING_DEVICE_LOGINS`](crate::flow::MAX_WAITING_DEVICE_LOGINS)
//! at once, as in the Workers object, so a server that never lets a login
//! end cannot make the app poll without bound. Counted per process (the
//! app polls its own logins).

use crate::error::{DeviceProblem, Error, Result};
use crate::flow::MAX_WAITING_DEVICE_LOGINS;
use crate::token::device::MAX_EXPIRES_SECS;
use std::collections::HashMap;
use std::sync::Mutex;

/// Each user's waiting device logins: their ids and when their codes expire.
#[derive(Debug, Default)]
pub(super) struct WaitingLogins(
    Mutex<HashMap<String, Vec<(String, u64)>>>,
    std::sync::atomic::AtomicU64,
);

/// A waiting device login's place, taken before it starts
/// ([`WaitingLogins::reserve`]); given back when dropped unfilled (the
/// login failed, was public, or its caller went away).
pub(super) struct Reservation<'a> {
    logins: &'a WaitingLogins,
    user: String,
    placeholder: String,
    kept: bool,
}

impl Reservation<'_> {
    /// The login `id` waits in this place until `expires_at`.
    pub(super) fn keep(mut self, id: &str, expires_at: u64) {
        self.logins.with(|all| {
            if let Some(entry) = all
                .get_mut(&self.user)
                .and_then(|l| l.iter_mut().find(|(i, _)| *i == self.placeholder))
            {
                *entry = (id.to_owned(), expires_at);
            }
        });
        self.kept = true;
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if !self.kept {
            self.logins.end(&self.user, &self.placeholder);
        }
    }
}

impl WaitingLogins {
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, Vec<(String, u64)>>) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// A place for a new device login of `user`, taken at once so that
    /// logins started together cannot all pass the count; refused when
    /// they have as many waiting (not yet expired at `now`) as one may.
    /// The place is given back unless [`Reservation::keep`] fills it.
    pub(super) fn reserve(&self, user: &str, now: u64) -> Result<Reservation<'_>> {
        let n = self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // No login id starts with a NUL.
        let placeholder = format!("\0reserved {n}");
        self.with(|all| {
            let list = all.entry(user.to_owned()).or_default();
            list.retain(|(_, expires_at)| *expires_at > now);
            if list.len() >= MAX_WAITING_DEVICE_LOGINS {
                return Err(Error::DeviceLogin(DeviceProblem::TooMany {
                    limit: MAX_WAITING_DEVICE_LOGINS,
                }));
            }
            list.push((placeholder.clone(), now + MAX_EXPIRES_SECS));
            Ok(())
        })?;
        Ok(Reservation {
            logins: self,
            user: user.to_owned(),
            placeholder,
            kept: false,
        })
    }

    /// `user`'s login `id` ended (connected, declined, expired).
    pub(super) fn end(&self, user: &str, id: &str) {
        self.with(|all| {
            if let Some(list) = all.get_mut(user) {
                list.retain(|(i, _)| i != id);
                if list.is_empty() {
                    all.remove(user);
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_has_a_few_waiting_and_expired_ones_do_not_count() {
        let w = WaitingLogins::default();
        // Started together: each takes its place before any is kept.
        let places: Vec<_> = (0..MAX_WAITING_DEVICE_LOGINS)
            .map(|_| w.reserve("alice", 100).unwrap())
            .collect();
        assert!(w.reserve("alice", 100).is_err(), "one too many at once");
        for (i, p) in places.into_iter().enumerate() {
            p.keep(&format!("l{i}"), 200);
        }
        assert!(w.reserve("alice", 100).is_err(), "one too many");
        drop(w.reserve("bob", 100).unwrap());
        w.end("alice", "l0");
        // A place not kept (the login failed) is given back.
        drop(w.reserve("alice", 100).unwrap());
        w.reserve("alice", 100).unwrap().keep("l9", 200);
        assert!(w.reserve("alice", 199).is_err());
        drop(w.reserve("alice", 200).unwrap());
        assert!(
            !w.0.lock().unwrap().contains_key("alice"),
            "expired ones dropped, and the user with them"
        );
    }
}
