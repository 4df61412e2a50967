//! A browser stand-in, and a signed-in person using the example app.

use super::*;

/// A browser stand-in: a cookie jar and manual redirects. Like a browser, it
/// says `Sec-Fetch-Site: same-origin` on navigations within the app it was
/// opened on (the person clicks the app's own links and forms).
#[derive(Debug, Clone)]
pub struct Browser {
    client: reqwest::Client,
    app_origin: Option<String>,
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

impl Browser {
    /// A fresh browser with an empty cookie jar.
    pub fn new() -> Self {
        let client = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .expect("browser client");
        Self {
            client,
            app_origin: None,
        }
    }

    /// A GET as a navigation from the app's own pages when `url` is on the
    /// app's origin.
    pub fn get(&self, url: impl reqwest::IntoUrl) -> reqwest::RequestBuilder {
        let url = url.into_url().expect("absolute URL");
        let same = self
            .app_origin
            .as_deref()
            .is_some_and(|o| url.origin().ascii_serialization() == o);
        let req = self.client.get(url);
        if same {
            req.header("sec-fetch-site", "same-origin")
        } else {
            req
        }
    }

    /// The underlying client (cookies kept, redirects not followed).
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Follows redirects from `start` until one points under `stop_prefix`, and
    /// returns that URL without fetching it. Panics if a page does not redirect.
    pub async fn follow_until(&self, start: &str, stop_prefix: &str) -> url::Url {
        let mut current = url::Url::parse(start).expect("absolute start URL");
        for _ in 0..20 {
            if current.as_str().starts_with(stop_prefix) {
                return current;
            }
            let resp = self
                .get(current.clone())
                .send()
                .await
                .unwrap_or_else(|e| panic!("GET {current}: {e}"));
            let status = resp.status();
            let Some(location) = resp.headers().get("location") else {
                let body = resp.text().await.unwrap_or_default();
                panic!("{current} answered {status} without a redirect: {body:.500}");
            };
            let location = location.to_str().expect("ASCII Location").to_owned();
            current = current.join(&location).expect("valid Location");
        }
        panic!("more than 20 redirects from {start}");
    }
}

impl Browser {
    /// What a person does with a device login's link: opens
    /// `verification_uri_complete` on oidc-provider's device pages, confirms
    /// the code shown (or presses Abort when `approve` is false), and is
    /// logged in and consents through the server's interaction routes.
    /// Returns the last page's body.
    pub async fn enter_device_code(
        &self,
        verification_uri_complete: &str,
        approve: bool,
    ) -> String {
        let hidden = |page: &str, name: &str| -> String {
            let marker = format!("name=\"{name}\" value=\"");
            let at = page
                .find(&marker)
                .unwrap_or_else(|| panic!("no {name} in {page:.800}"));
            let rest = &page[at + marker.len()..];
            rest[..rest.find('"').expect("closed value")].to_owned()
        };
        let open = url::Url::parse(verification_uri_complete).expect("absolute URL");
        let page = self
            .get(open.clone())
            .send()
            .await
            .expect("GET device page");
        let page = page.text().await.expect("device page");
        // The page posts the code with the session's xsrf value; the server
        // answers with the confirmation form.
        let action = open.join("/device").expect("device action");
        let form = [
            ("xsrf", hidden(&page, "xsrf")),
            ("user_code", hidden(&page, "user_code")),
        ];
        let confirm = self
            .client
            .post(action.clone())
            .form(&form)
            .send()
            .await
            .expect("POST code");
        let confirm = confirm.text().await.expect("confirmation page");
        let answer = if approve {
            ("confirm", "yes")
        } else {
            ("abort", "yes")
        };
        let form = [
            ("xsrf", hidden(&confirm, "xsrf")),
            ("user_code", hidden(&confirm, "user_code")),
            (answer.0, answer.1.to_owned()),
        ];
        let mut resp = self
            .client
            .post(action.clone())
            .form(&form)
            .send()
            .await
            .expect("POST confirm");
        let mut at = action;
        for _ in 0..20 {
            let Some(location) = resp.headers().get("location") else {
                return resp.text().await.unwrap_or_default();
            };
            at = at
                .join(location.to_str().expect("ASCII Location"))
                .expect("valid Location");
            resp = self
                .get(at.clone())
                .send()
                .await
                .unwrap_or_else(|e| panic!("GET {at}: {e}"));
        }
        panic!("more than 20 redirects after confirming the device code");
    }
}

/// A signed-in person using the example app.
pub struct App {
    /// The app's origin.
    pub origin: String,
    /// The person's browser (cookies kept).
    pub browser: Browser,
}

impl App {
    pub async fn sign_in(worker: &Worker, user: &str) -> App {
        let mut browser = Browser::new();
        browser.app_origin = Some(worker.origin.clone());
        let app = App {
            origin: worker.origin.clone(),
            browser,
        };
        let (status, _) = app.get(&format!("/signin?user={user}")).await;
        assert_eq!(status, 302, "sign in");
        app
    }

    pub async fn open(&self, url: &str) -> (u16, String) {
        let resp = self.browser.get(url).send().await.expect("app reachable");
        (
            resp.status().as_u16(),
            resp.text().await.unwrap_or_default(),
        )
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        self.open(&format!("{}{path}", self.origin)).await
    }

    pub async fn json(&self, path: &str) -> (u16, Value) {
        let (status, text) = self.get(path).await;
        (
            status,
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("{path}: not JSON: {text}")),
        )
    }

    /// POSTs to one of the app's routes and reads its JSON answer.
    pub async fn post_json(&self, path: &str) -> (u16, Value) {
        self.send_json(reqwest::Method::POST, path).await
    }

    /// Sends `method` to one of the app's routes and reads its JSON answer.
    pub async fn send_json(&self, method: reqwest::Method, path: &str) -> (u16, Value) {
        let resp = self
            .browser
            .client
            .request(method, format!("{}{path}", self.origin))
            .header("sec-fetch-site", "same-origin")
            .send()
            .await
            .expect("app reachable");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub fn login_path(resource: &str) -> String {
        format!("/oauth/login?url={}", urlencode(resource))
    }

    /// Runs the login up to the redirect back to the app, without opening it.
    pub async fn start(&self, resource: &str) -> String {
        let start = format!("{}{}", self.origin, Self::login_path(resource));
        let back = self
            .browser
            .follow_until(&start, &format!("{}/oauth/callback", self.origin))
            .await;
        back.to_string()
    }

    /// Connects a resource through the authorization server; returns the
    /// callback page's status and body.
    pub async fn connect(&self, resource: &str) -> (u16, String) {
        let back = self.start(resource).await;
        self.open(&back).await
    }

    pub async fn providers(&self) -> Vec<Value> {
        let (status, v) = self.json("/api/providers").await;
        assert_eq!(status, 200, "{v}");
        v.as_array().expect("array").clone()
    }

    pub async fn fetch(&self, url: &str) -> (u16, Value) {
        self.json(&format!("/api/fetch?url={}", urlencode(url)))
            .await
    }
}

impl App {
    /// Starts a login with a `login_hint` for the authorization server.
    pub async fn start_with_hint(&self, resource: &str, hint: &str) -> String {
        let start = format!("{}{}", self.origin, Self::login_path(resource));
        let resp = self.browser.get(&start).send().await.unwrap();
        let mut to = url::Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
        to.query_pairs_mut().append_pair("login_hint", hint);
        self.browser
            .follow_until(to.as_str(), &format!("{}/oauth/callback", self.origin))
            .await
            .to_string()
    }
}
