use places::{define_remote_server, Place};

define_remote_server! {
    bank {
        state balance: u64 = 0;
        // `r#new` is the method `new` once expanded: it clashes with `BankClient::new` too.
        rpc fn r#new() -> u64 {
            balance
        }
    }
}

fn main() {
    let server: Place<BankRequest, BankResponse> = Place::spawn(make_bank).unwrap();
    drop(server);
}
