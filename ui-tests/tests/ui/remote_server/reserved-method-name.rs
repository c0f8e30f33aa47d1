use places::{define_remote_server, Place};

define_remote_server! {
    bank {
        state balance: u64 = 0;
        state history: Vec<String> = Vec::new();
        // The client already has `new` and `with_deadline`, and the reply `Log` carries
        // `log_to_parent` messages.
        cast fn new() {
            balance = 0;
        }
        rpc fn with_deadline(days: u32) -> u64 {
            balance + u64::from(days)
        }
        rpc fn log() -> Vec<String> {
            history.clone()
        }
    }
}

fn main() {
    let server: Place<BankRequest, BankResponse> = Place::spawn(make_bank).unwrap();
    drop(server);
}
