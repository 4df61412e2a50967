#[idp::idp_worker(name = "one", name = "two")]
struct App;

fn main() {}
