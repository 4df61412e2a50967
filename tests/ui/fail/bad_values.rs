#[idp::idp_worker(prefix = "oauth/")]
struct A;

#[idp::idp_worker(base_url = "not a url")]
struct B;

#[idp::idp_worker(class = "OAuth-Providers")]
struct C;

fn main() {}
