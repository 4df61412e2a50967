//! Is a resource public, or does it need authorization?

use crate::challenge::BearerChallenge;
use crate::error::{Error, Result};
use crate::http::{HttpClient, HttpRequest, HttpResponse, Method};
use url::Url;

/// What a request without credentials told us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// 2xx without credentials: no token needed.
    Public,
    /// 401: authorization needed; the Bearer challenge, when one was sent.
    NeedsAuthorization(Option<BearerChallenge>),
}

/// A HEAD request without credentials.
pub fn probe_request(url: &Url) -> HttpRequest {
    HttpRequest {
        method: Method::Head,
        url: url.clone(),
        headers: Vec::new(),
        body: Vec::new(),
    }
}

/// Classifies a probe response. Anything but 2xx or 401 is an error saying what
/// came back; so is a 401 whose `WWW-Authenticate` is malformed.
pub fn classify(url: &Url, resp: &HttpResponse) -> Result<Probe> {
    match resp.status {
        200..=299 => Ok(Probe::Public),
        401 => Ok(Probe::NeedsAuthorization(BearerChallenge::from_headers(
            resp.header_values("www-authenticate"),
        )?)),
        status => Err(Error::UnexpectedStatus {
            url: url.clone(),
            status,
            expected:
                "2xx (public) or 401 (authorization required) to a request without credentials",
        }),
    }
}

/// Probes with HEAD, and with GET when the server does not allow HEAD (405, 501).
pub async fn probe(http: &impl HttpClient, url: &Url) -> Result<Probe> {
    let send = |req: HttpRequest| async {
        http.send(req).await.map_err(|e| Error::Transport {
            url: url.clone(),
            message: e.message,
        })
    };
    let mut resp = send(probe_request(url)).await?;
    if matches!(resp.status, 405 | 501) {
        let mut get = probe_request(url);
        get.method = Method::Get;
        resp = send(get).await?;
    }
    classify(url, &resp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{block_on, Script};

    #[test]
    fn classification() {
        let url = Url::parse("https://api.example/x").unwrap();
        assert_eq!(
            classify(&url, &HttpResponse::new(204, "")).unwrap(),
            Probe::Public
        );
        let r = HttpResponse::new(401, "").with_header("WWW-Authenticate", r#"Bearer scope="a""#);
        assert_eq!(
            classify(&url, &r).unwrap(),
            Probe::NeedsAuthorization(Some(BearerChallenge {
                scope: Some("a".into()),
                ..Default::default()
            }))
        );
        assert_eq!(
            classify(&url, &HttpResponse::new(401, "")).unwrap(),
            Probe::NeedsAuthorization(None)
        );
        let bad = HttpResponse::new(401, "").with_header("www-authenticate", r#"Bearer realm="x"#);
        assert!(matches!(classify(&url, &bad), Err(Error::Challenge(_))));
        let e = classify(&url, &HttpResponse::new(404, "")).unwrap_err();
        assert!(e.to_string().contains("HTTP 404"), "{e}");
    }

    #[test]
    fn falls_back_to_get() {
        let script = Script::new()
            .status("https://api.example/x", 405)
            .status("https://api.example/x", 200);
        let url = Url::parse("https://api.example/x").unwrap();
        assert_eq!(block_on(probe(&script, &url)).unwrap(), Probe::Public);
        let methods: Vec<Method> = script.requests().iter().map(|r| r.method).collect();
        assert_eq!(methods, [Method::Head, Method::Get]);
        assert!(script
            .requests()
            .iter()
            .all(|r| r.header("authorization").is_none()));
    }
}
