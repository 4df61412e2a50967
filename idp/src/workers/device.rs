//! Connecting with no browser callback (RFC 8628) from a Worker: the user's
//! object asks the server for a code, and polls from its alarm at the
//! server's pace while the person enters the code on another device.

use super::error::{parse_url, Error};
use super::handler::Handler;
use super::protocol::{
    DeviceStartReply, DeviceStatus, PollDeviceLogin, ProviderView, StartDeviceLogin,
};
use crate::flow::DeviceLogin;

/// How starting a device login went.
#[derive(Debug, Clone, PartialEq)]
pub enum DeviceConnect {
    /// The resource answered without credentials: it is connected as public.
    Public(ProviderView),
    /// Show the person `user_code` and `verification_uri` (or link
    /// `verification_uri_complete`); the user's object polls from its
    /// alarm, and [`Handler::device_login`] says where it stands.
    Waiting(DeviceLogin),
}

impl Handler {
    /// Starts connecting `url` for this user with no browser callback (the
    /// device authorization grant, RFC 8628), where the resource's
    /// authorization server offers it (its metadata's
    /// `device_authorization_endpoint`, or a profile's): for a user on a
    /// TV, a terminal or a chat, where no redirect can come back. The
    /// user's object polls the server from its alarm until the person
    /// approves, declines or the code expires; the provider is then stored
    /// like any other and `on_auth_success` names it.
    ///
    /// ```no_run
    /// # async fn f(handler: &idp::workers::Handler) -> Result<(), idp::workers::Error> {
    /// use idp::workers::{DeviceConnect, DeviceStatus};
    /// if let DeviceConnect::Waiting(login) = handler.start_device_login("https://api.example.com/v1", None).await? {
    ///     // Tell the person: "enter {login.user_code} at {login.verification_uri}".
    ///     // Later (a chat's next message, a page that polls):
    ///     if let DeviceStatus::Connected { provider } = handler.device_login(&login.id).await? {
    ///         let _ = provider.name;
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn start_device_login(
        &self,
        url: &str,
        scope: Option<&str>,
    ) -> Result<DeviceConnect, Error> {
        let stub = self.stub();
        let reply = stub
            .call(StartDeviceLogin {
                owner: stub.owner.clone(),
                url: parse_url(url)?,
                scope: scope.map(str::to_owned),
                settings: Box::new(self.settings()),
            })
            .await?;
        Ok(match reply {
            DeviceStartReply::Waiting(login) => DeviceConnect::Waiting(login),
            DeviceStartReply::Public(super::protocol::CallbackReply {
                provider,
                hook_error,
            }) => {
                if let Some(e) = hook_error {
                    worker::console_warn!(
                        "on_auth_success failed for {}: {e}",
                        provider.resource_url
                    );
                }
                DeviceConnect::Public(provider)
            }
        })
    }

    /// Where this user's device login `id` stands: waiting, or connected.
    /// The person's refusal is an error of kind `authorization_denied`, an
    /// expired code one of kind `device_login`; an ended login's outcome
    /// is kept an hour.
    pub async fn device_login(&self, id: &str) -> Result<DeviceStatus, Error> {
        let stub = self.stub();
        stub.call(PollDeviceLogin {
            owner: stub.owner.clone(),
            id: id.to_owned(),
        })
        .await
    }
}
