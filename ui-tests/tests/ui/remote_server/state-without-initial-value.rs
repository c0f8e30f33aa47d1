use places::{define_remote_server, Place};

define_remote_server! {
    bank {
        state balance: u64;
        rpc fn deposit(amount: u64) -> u64 {
            balance += amount;
            balance
        }
    }
}

fn main() {
    let server: Place<BankRequest, BankResponse> = Place::spawn(make_bank).unwrap();
    drop(server);
}
