use places::{define_remote_server, Place};

define_remote_server! {
    bank {
        state balance: u64 = 0;
        rpc fn withdraw(mut amount: u64) -> u64 {
            amount = amount.min(balance);
            balance -= amount;
            amount
        }
    }
}

fn main() {
    let server: Place<BankRequest, BankResponse> = Place::spawn(make_bank).unwrap();
    drop(server);
}
