#[idp::idp_worker]
struct App;

fn main() {}
