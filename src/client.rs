//! The widget's calls to the broker, on the shared `fetch` core.

use crate::error::{Error, Result};
use agent_assist_protocol::{
    ConsentRequest, CreateCodeRequest, CreateCodeResponse, SessionStatus, StreamTicket,
};
use agent_assist_web::http::Http;

#[derive(Clone, Debug)]
pub struct BrokerClient {
    http: Http,
}

impl BrokerClient {
    pub fn new(base: String) -> Self {
        BrokerClient {
            http: Http::new(base),
        }
    }

    pub fn base(&self) -> &str {
        self.http.base()
    }

    /// Sends the code request at once (see [`Http::call`]); the future is
    /// its answer. An answer of the right shape that the widget cannot use
    /// (a code that is not six digits, credentials that would not fit in a
    /// URL) is [`Error::BadResponse`], like one that does not parse.
    pub fn create_code(
        &self,
        request: &CreateCodeRequest,
    ) -> impl std::future::Future<Output = Result<CreateCodeResponse>> + use<> {
        let call = self.http.call("POST", "/v1/codes", None, Some(request));
        async move {
            let response: CreateCodeResponse = call.await?;
            if !response.is_usable() {
                return Err(Error::BadResponse);
            }
            Ok(response)
        }
    }

    pub async fn cancel(&self, session_id: &str, device_token: &str) -> Result<SessionStatus> {
        self.post_session(session_id, "/cancel", device_token).await
    }

    pub async fn end(&self, session_id: &str, device_token: &str) -> Result<SessionStatus> {
        self.post_session(session_id, "/end", device_token).await
    }

    pub async fn status(&self, session_id: &str, device_token: &str) -> Result<SessionStatus> {
        let path = ["/v1/sessions/", session_id].concat();
        Ok(self
            .http
            .call::<(), _>("GET", &path, Some(device_token), None)
            .await?)
    }

    pub async fn consent(
        &self,
        session_id: &str,
        device_token: &str,
        allow: bool,
    ) -> Result<SessionStatus> {
        let path = ["/v1/sessions/", session_id, "/consent"].concat();
        let body = ConsentRequest { allow };
        Ok(self
            .http
            .call("POST", &path, Some(device_token), Some(&body))
            .await?)
    }

    /// A new stream ticket; one that could not go in the stream's URL as
    /// it is counts as a bad answer.
    pub async fn ticket(&self, session_id: &str, device_token: &str) -> Result<StreamTicket> {
        let path = ["/v1/sessions/", session_id, "/ticket"].concat();
        let ticket: StreamTicket = self
            .http
            .call::<(), _>("POST", &path, Some(device_token), None)
            .await?;
        if !agent_assist_protocol::is_credential(&ticket.ticket) {
            return Err(Error::BadResponse);
        }
        Ok(ticket)
    }

    async fn post_session(
        &self,
        session_id: &str,
        action: &str,
        device_token: &str,
    ) -> Result<SessionStatus> {
        let path = ["/v1/sessions/", session_id, action].concat();
        Ok(self
            .http
            .call::<(), _>("POST", &path, Some(device_token), None)
            .await?)
    }
}
