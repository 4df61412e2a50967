//! The device logins this process started and that still wait for their
//! person ([`WaitingLogins`]): a user has at most
//! [`MAX_WAITING_DEVICE_LOGINS`](crate::flow::MAX_WAITING_DEVICE_LOGINS)
//! at once, as in the Workers object, so a server that never lets a login
//! end cannot make the app poll without bound. Counted per process (the
//! app polls its own logins).

use crate::error::{DeviceProblem, Error, Result};
use crate::flow::MAX_WAITING_DEVICE_LOGINS;
use std::collections::HashMap;
use std::sync::Mutex;

/// Each user's waiting device logins: their ids and when their codes expire.
#[derive(Debug, Default)]
pub(super) struct WaitingLogins(Mutex<HashMap<String, Vec<(String, u64)>>>);

impl WaitingLogins {
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, Vec<(String, u64)>>) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Refuses a new device login of `user` who has as many waiting (not
    /// yet expired at `now`) as one may.
    pub(super) fn check(&self, user: &str, now: u64) -> Result<()> {
        self.with(|all| {
            let Some(list) = all.get_mut(user) else {
                return Ok(());
            };
            list.retain(|(_, expires_at)| *expires_at > now);
            if list.len() >= MAX_WAITING_DEVICE_LOGINS {
                return Err(Error::DeviceLogin(DeviceProblem::TooMany {
                    limit: MAX_WAITING_DEVICE_LOGINS,
                }));
            }
            Ok(())
        })
    }

    /// `user`'s login `id` waits until `expires_at`.
    pub(super) fn add(&self, user: &str, id: &str, expires_at: u64) {
        self.with(|all| {
            all.entry(user.to_owned())
                .or_default()
                .push((id.to_owned(), expires_at))
        });
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
        for i in 0..MAX_WAITING_DEVICE_LOGINS {
            w.check("alice", 100).unwrap();
            w.add("alice", &format!("l{i}"), 200);
        }
        assert!(w.check("alice", 100).is_err(), "one too many");
        w.check("bob", 100).unwrap();
        w.end("alice", "l0");
        w.check("alice", 100).unwrap();
        w.add("alice", "l9", 200);
        assert!(w.check("alice", 199).is_err());
        w.check("alice", 200).unwrap();
        assert!(
            w.0.lock().unwrap()["alice"].is_empty(),
            "expired ones dropped"
        );
    }
}
