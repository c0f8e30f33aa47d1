use places::{define_remote_server, Place};

define_remote_server! {
    // A derive would land on one generated item and not on the others.
    #[derive(Clone)]
    bank {
        state balance: u64 = 0;
        rpc fn balance() -> u64 {
            balance
        }
    }
}

fn main() {
    let server: Place<BankRequest, BankResponse> = Place::spawn(make_bank).unwrap();
    drop(server);
}
