//! The small HTML pages the middleware shows. Everything inserted is escaped.

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
<title>{t}</title><style>body{{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem}}\
.err{{color:#a00}}code{{word-break:break-all}}</style></head><body>{body}</body></html>",
        t = escape(title)
    )
}

/// The page shown after a resource is connected.
pub fn connected(name: &str, resource_url: &str, warning: Option<&str>, back: &str) -> String {
    let warning = warning
        .map(|w| format!("<p class=\"err\">{}</p>", escape(w)))
        .unwrap_or_default();
    page(
        "Connected",
        &format!(
            "<h1>Connected {name}</h1><p>You can now use <code>{url}</code>.</p>{warning}<p><a href=\"{back}\">Continue</a></p>",
            name = escape(name),
            url = escape(resource_url),
            back = escape(back),
        ),
    )
}

/// The page shown when connecting failed.
pub fn failed(message: &str, back: &str) -> String {
    page(
        "Could not connect",
        &format!(
            "<h1>Could not connect</h1><p class=\"err\">{}</p><p><a href=\"{}\">Back</a></p>",
            escape(message),
            escape(back)
        ),
    )
}

/// The page that asks before connecting a resource, when the request to
/// connect did not come from the app's own pages. Its button posts the
/// single-use `token` back to `action` (same origin).
pub fn confirm(
    resource_url: &str,
    scope: Option<&str>,
    action: &str,
    token: &str,
    back: &str,
) -> String {
    // Host and port, as the person would recognise the server.
    let host = url::Url::parse(resource_url)
        .ok()
        .map(|u| u[url::Position::BeforeHost..url::Position::AfterPort].to_owned())
        .unwrap_or_default();
    let scope_field = scope
        .map(|s| {
            format!(
                "<input type=\"hidden\" name=\"scope\" value=\"{}\"><p>Access asked for: <code>{}</code></p>",
                escape(s),
                escape(s)
            )
        })
        .unwrap_or_default();
    page(
        "Connect a resource?",
        &format!(
            "<h1>Connect {host} to your account?</h1>\
<p>A page asked to connect <code>{url}</code>. Continue only if you started this.</p>\
<form method=\"post\" action=\"{action}\"><input type=\"hidden\" name=\"url\" value=\"{url}\">\
<input type=\"hidden\" name=\"token\" value=\"{token}\">{scope_field}\
<button type=\"submit\">Connect</button> <a href=\"{back}\">Cancel</a></form>",
            host = escape(&host),
            url = escape(resource_url),
            action = escape(action),
            token = escape(token),
            back = escape(back),
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_text() {
        let html = connected(
            "<script>alert(1)</script>",
            "https://a/\"x",
            Some("<b>"),
            "/",
        );
        assert!(!html.contains("<script>"));
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("https://a/&quot;x"));
        assert!(failed("<img src=x onerror=y>", "/").contains("&lt;img src=x onerror=y&gt;"));
        let c = confirm(
            "https://evil.example/\"><script>",
            Some("<s>"),
            "/oauth/login",
            "t0k",
            "/",
        );
        assert!(!c.contains("<script>") && !c.contains("<s>"), "{c}");
        assert!(c.contains("Connect evil.example to your account?"), "{c}");
        assert!(c.contains("name=\"token\" value=\"t0k\""), "{c}");
        let c = confirm("http://127.0.0.1:9401/api", None, "/oauth/login", "t", "/");
        assert!(c.contains("Connect 127.0.0.1:9401 to your account?"), "{c}");
    }
}
