//! The native runtime ignores the environment's proxy settings: a proxy
//! resolves names itself, past the address policy, so an `HTTPS_PROXY`
//! would let a resource's metadata point the SDK at a name inside the
//! proxy's network. Its own process (one test) since it sets the
//! environment.
#![cfg(feature = "native")]

use idp::http::{HttpClient, HttpRequest};
use idp::native::ReqwestHttp;
use idp::policy::Policy;
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

#[test]
fn a_proxy_in_the_environment_gets_nothing() {
    // A "proxy" on loopback that counts the connections it is offered.
    let proxy = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = proxy.local_addr().unwrap().port();
    proxy.set_nonblocking(true).unwrap();
    let offered = Arc::new(AtomicUsize::new(0));
    let counter = offered.clone();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopping = stop.clone();
    let listener = std::thread::spawn(move || {
        while !stopping.load(Ordering::Relaxed) {
            if proxy.accept().is_ok() {
                counter.fetch_add(1, Ordering::Relaxed);
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    });
    let at = format!("http://127.0.0.1:{port}");
    for name in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
    ] {
        std::env::set_var(name, &at);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let http = ReqwestHttp::with_policy(Policy::STRICT);
    for target in [
        "https://metadata.google.internal/computeMetadata/v1/",
        "https://internal.invalid/secret",
    ] {
        let req = HttpRequest::get_json(url::Url::parse(target).unwrap());
        let sent = rt.block_on(http.send(req));
        assert!(sent.is_err(), "{target}: {sent:?}");
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    listener.join().unwrap();
    assert_eq!(
        offered.load(Ordering::Relaxed),
        0,
        "the proxy was offered nothing"
    );
}
