#[idp::idp_worker]
enum App {
    A,
}

fn main() {}
