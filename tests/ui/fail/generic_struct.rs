#[idp::idp_worker]
struct App<T> {
    inner: T,
}

fn main() {}
