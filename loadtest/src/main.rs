fn main() { eprintln!("quicmeet-loadtest: not built yet"); std::process::exit(2) }
