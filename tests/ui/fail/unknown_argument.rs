#[idp::idp_worker(nmae = "typo")]
struct App;

fn main() {}
